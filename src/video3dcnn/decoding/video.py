"""Decoding one video into clips through PyAV (FFmpeg): exact frames, bounded memory (docs/processing.md, "Decoding").

Frame ``i`` is the ``i``-th frame a sequential decode produces. Container frame counts are never used: the video
packets are indexed by demuxing the file without decoding it (``index_packets``), and frame ``i`` is the packet with
the ``i``-th smallest presentation time. The usual path (``runs``) decodes only the runs from the keyframe before each
wanted frame that the frame does not precede on screen, seeking to runs far ahead, with FFmpeg skipping the frames no
other frame refers to (``skip_frame=NONREF``) unless a clip needs them. That is exact only when every packet is one
frame: whatever speaks against it (see ``_Decline``'s raisers) sends the video to one sequential pass that converts
only the wanted frames, and a second one when the packet count was wrong (``sequential``, ``sequential+recount``).

Memory: the index (about 60 bytes a packet, at most ``MAX_FRAMES``), the packets up to ``KEEP_BYTES``, the decoder's
reference frames (each at most ``max_pixels``) and the wanted frames, resized, in one array. Every decoder runs
single-threaded: one process per core scales better than decoder threads.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video3dcnn.clips import clip_indices, merge_runs, wanted_frames
from video3dcnn.config import DEFAULT_MAX_PIXELS, ClipSpec
from video3dcnn.decoding.mpeg4 import config_prefix, parse_vol, vop_kind
from video3dcnn.errors import VideoDecodeError

try:
    import av
    from av.video.reformatter import VideoReformatter

    from video3dcnn.decoding.frames import to_bgr, to_clip_frame
except ImportError as exc:  # pragma: no cover - depends on the installed extra
    raise ImportError("video decoding needs PyAV and OpenCV: pip install 'video3dcnn[processing]'") from exc

logger = logging.getLogger(__name__)

MAX_FRAMES = 2_000_000  # packets a video may have (22 hours at 25 fps): bounds the index at about 120 MB
KEEP_BYTES = 32 << 20  # the packets of a stream up to this size are kept from the index for the runs
SEEK_BYTES = 1 << 20  # in a larger stream, the runs seek past a gap of more than this; a shorter one is read through
NO_TIME = np.iinfo(np.int64).min


@dataclass(frozen=True)
class DecodedVideo:
    """The clips taken from one video.

    Attributes:
        clips: uint8 ``[K, T, H, W, C]``, RGB (C = 3) or gray (C = 1) per the spec; K = 1 for ``uniform`` and
            ``head``, K >= 1 for ``sliding``.
        frame_indices: int32 ``[K, T]``: which decoded frame each clip frame is.
        num_frames: frames that really decode. For ``head`` decoding stops once the clip is complete, so this is
            then at most ``spec.frames``.
        method: ``runs``, ``sequential`` or ``sequential+recount`` (the packet count was wrong: a second pass).
    """

    clips: np.ndarray
    frame_indices: np.ndarray
    num_frames: int
    method: str = "sequential"


FROZEN_WARNING = "every sampled frame is the same picture: a still video, or a stream that decodes to one picture"


def frozen(decoded: DecodedVideo) -> bool:
    """Whether every clip frame is the same picture although at least two different frames were sampled.

    Such a clip shows no motion (a still video, a slide show of one picture, or a damaged stream), so processing
    keeps it but warns (``FROZEN_WARNING``) and lists it in the manifest.
    """
    if len(np.unique(decoded.frame_indices)) < 2:
        return False
    frames = decoded.clips.reshape(-1, *decoded.clips.shape[2:])
    return bool((frames == frames[0]).all())


def decode_clips(path: Path, spec: ClipSpec, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedVideo:
    """Decode the clips ``spec`` takes from the video at ``path``.

    Args:
        path: a video file.
        spec: frames per clip, size, colour and sampling.
        max_pixels: the largest frame (width x height) to decode; a video with larger frames is refused.

    Returns:
        The clips with their frame indices.

    Raises:
        VideoDecodeError: the file is missing, empty, not a video, truncated beyond use, too large, or no frame
            decodes.
    """
    path = Path(path)
    _check_file(path)
    try:
        if spec.sampling == "head":  # the first frames need no frame count
            return _decode_sequential(path, spec, None, max_pixels)
        with _open(path, max_pixels) as video:
            index = index_packets(video)
            try:
                return _decode_runs(video, spec, index)
            except _Decline as exc:
                logger.debug("%s: decoding every frame (%s)", path, exc)
        return _decode_sequential(path, spec, len(index.pts) or None, max_pixels)
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(f"{path}: {_why(exc)}") from None


def _why(exc: av.error.FFmpegError) -> str:
    return " ".join(str(exc.strerror or exc).split())


def _check_file(path: Path) -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, which Python names with surrogates
        raise VideoDecodeError(f"{path}: the file name is not valid UTF-8; rename the file") from None
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: empty file (0 bytes)")


@dataclass(frozen=True)
class _Video:
    path: Path
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    reformatter: VideoReformatter


@contextmanager
def _open(path: Path, max_pixels: int) -> Iterator[_Video]:
    """Open the first video stream of ``path`` for single-threaded decoding of frames up to ``max_pixels``.

    FFmpeg's own ``max_pixels`` also binds the decoding that opening does to probe the stream, so a frame size read
    from a header never sizes an allocation before it has been checked.

    Raises:
        VideoDecodeError: the file does not open, has no video stream or decoder for it, or its frames are too large.
    """
    limit = {"max_pixels": str(max_pixels)}
    try:
        container = av.open(str(path), options=limit)
    except av.error.FFmpegError as exc:
        reason = f"{path}: cannot open as a video ({_why(exc)}): not a video file, truncated, or a damaged header"
        raise VideoDecodeError(reason) from None
    try:
        streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not streams:
            raise VideoDecodeError(f"{path}: no video stream")
        stream = streams[0]
        codec = stream.codec_context
        if codec is None:
            raise VideoDecodeError(f"{path}: no decoder for its video codec")
        if codec.width * codec.height > max_pixels:
            raise VideoDecodeError(
                f"{path}: frames of {codec.width}x{codec.height} pixels are over the limit of {max_pixels:,} pixels "
                "per frame (raise it with --max-pixels)"
            )
        codec.thread_count = 1
        codec.options = limit
        yield _Video(path, container, stream, VideoReformatter())
    finally:
        container.close()


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class PacketIndex:
    """The video packets of a file in decoding order, found by demuxing without decoding.

    Attributes:
        pts, dts: int64 presentation and decoding times in the stream's time base (``NO_TIME`` where missing).
        pos, size: int64 byte offset (-1 where unknown) and size of each packet.
        keyframe: bool, whether the container marks the packet a keyframe.
        problem: why the packets may not be one frame each (None when nothing speaks against it).
        packets: the packets themselves while they total at most ``KEEP_BYTES``, else None (then read again).
    """

    pts: np.ndarray
    dts: np.ndarray
    pos: np.ndarray
    size: np.ndarray
    keyframe: np.ndarray
    problem: str | None
    packets: list[av.Packet] | None


def index_packets(video: _Video) -> PacketIndex:
    """Demux every packet of the video stream (from the current position, without decoding) into an index.

    Raises:
        VideoDecodeError: more than ``MAX_FRAMES`` packets.
    """
    pts, dts, pos, size = (array("q") for _ in range(4))
    keyframe, packets, kept = bytearray(), [], 0
    problem, kinds = None, _Mpeg4Kinds(video) if video.stream.codec_context.name == "mpeg4" else None
    try:
        for packet in video.container.demux(video.stream):
            if not (length := packet.size):  # the demuxer's last, empty packet
                continue
            if len(keyframe) == MAX_FRAMES:
                raise VideoDecodeError(f"{video.path}: more than {MAX_FRAMES:,} video packets; cut the video")
            pts.append(NO_TIME if (time := packet.pts) is None else time)
            dts.append(NO_TIME if (value := packet.dts) is None else value)
            pos.append(-1 if (value := packet.pos) is None else value)
            size.append(length)
            keyframe.append(packet.is_keyframe)
            kept += length
            packets = packets if kept <= KEEP_BYTES else None  # a long video: read again, seeking to each run
            if packets is not None:
                packets.append(packet)
            if problem is None and (time is None or packet.is_corrupt or packet.is_discard):
                problem = "a packet without a presentation time, or marked corrupt or to be discarded"
            if problem is None and kinds is not None and (kind := kinds(bytes(packet))) not in ("I", "P", "B"):
                problem = f"an MPEG-4 Part 2 packet that is not one coded I-, P- or B-frame ({kind})"
    except av.error.FFmpegError as exc:  # a damaged or cut file: the sequential pass decodes what it can
        problem = problem or f"demuxing stopped early ({_why(exc)})"
    columns = (np.frombuffer(column, np.int64) if column else np.zeros(0, np.int64) for column in (pts, dts, pos, size))
    return PacketIndex(*columns, np.frombuffer(bytes(keyframe), np.bool_), problem, packets)


class _Mpeg4Kinds:
    """``mpeg4.vop_kind`` of each packet of a stream, in order (the VOL comes from the extradata or packet 0)."""

    def __init__(self, video: _Video) -> None:
        self.header = bytes(video.stream.codec_context.extradata or b"")
        self.vol = None

    def __call__(self, packet: bytes) -> str:
        if self.vol is None:
            self.vol = parse_vol(self.header + config_prefix(packet))
        return vop_kind(packet, self.vol) if self.vol else "no VOL header"


class _Decline(Exception):
    """The runs cannot give the frames of a sequential decode for sure; the reason is the message."""


def _decode_runs(video: _Video, spec: ClipSpec, index: PacketIndex) -> DecodedVideo:
    """Decode only the keyframe runs that hold the wanted frames (see the module docstring)."""
    if index.problem or not len(index.pts):
        raise _Decline(index.problem or "no packets")
    order = np.argsort(index.pts, kind="stable")
    times = index.pts[order]  # frame i shows at times[i]
    if (times[1:] == times[:-1]).any():
        raise _Decline("two packets share a presentation time")
    indices = clip_indices(spec, len(times))
    wanted = wanted_frames(indices)
    wanted_packets = np.zeros(len(times), bool)
    wanted_packets[order[wanted]] = True
    reader = _Packets(video, index, times, order)
    frames = _Frames(wanted, spec)
    try:
        for start, stop in _plan_runs(index, order[wanted]):
            _decode_run(video, spec, reader, (start, stop), wanted_packets[start : stop + 1].tolist(), frames)
    except av.error.FFmpegError as exc:
        raise _Decline(f"decoding failed ({_why(exc)})") from None
    if len(frames) != len(wanted):
        raise _Decline("a wanted frame did not come out")
    return _assemble(frames, indices, len(times), "runs")


def _plan_runs(index: PacketIndex, targets: np.ndarray) -> list[tuple[int, int]]:
    """Runs ``(first, last)`` of packets to decode, each from the last keyframe before a target that the target does
    not precede on screen (a frame before an open-GOP keyframe may refer to the GOP before it)."""
    keys = np.flatnonzero(index.keyframe)
    spans = []
    for target, at in zip(targets.tolist(), (np.searchsorted(keys, targets, "right") - 1).tolist()):
        while at >= 0 and index.pts[keys[at]] > index.pts[target]:
            at -= 1
        if at < 0:
            raise _Decline(f"no keyframe before packet {target} that it follows on screen")
        spans.append((int(keys[at]), target))
    return merge_runs(spans)


def _decode_run(
    video: _Video, spec: ClipSpec, reader: _Packets, run: tuple[int, int], wanted: list[bool], frames: _Frames
) -> None:
    """Decode packets ``run[0]..run[1]`` from a flushed decoder; keep the wanted frames (by frame number).

    A frame is known by its presentation time, which the decoder copies from the packet that coded it.
    """
    codec = video.stream.codec_context
    start, stop = run
    times = reader.index.pts[start : stop + 1].tolist()
    packet_at = {time: offset for offset, time in enumerate(times)}
    shown = {"last": None, "key": False}

    def take(frame: av.VideoFrame) -> None:
        offset = packet_at.get(frame.pts)
        if offset is None:
            raise _Decline(f"a frame with a time no packet of run {run} has ({frame.pts})")
        if frame.pts < times[0]:  # shown before the keyframe: not decodable from it, and not wanted from this run
            return
        late = shown["last"] is not None and frame.pts <= shown["last"]
        if late or frame.is_corrupt or (offset == 0 and not frame.key_frame):
            raise _Decline(f"packet {start + offset} came out of order, corrupt, or as a keyframe that is not one")
        shown["last"], shown["key"] = frame.pts, shown["key"] or offset == 0
        if wanted[offset]:
            frames[reader.frame_number(frame.pts)] = to_clip_frame(to_bgr(frame, video.reformatter), spec)

    reader.go_to(start)
    codec.flush_buffers()
    skipping = None
    for needed in wanted:
        if skipping is None or skipping == needed:  # setting it costs more than checking
            skipping = not needed
            codec.skip_frame = "NONREF" if skipping else "DEFAULT"
        for frame in codec.decode(reader.take()):
            take(frame)
    codec.skip_frame = "DEFAULT"
    for frame in codec.decode(None):
        take(frame)
    codec.flush_buffers()
    if not shown["key"]:
        raise _Decline(f"the keyframe at packet {start} gave no frame")


class _Packets:
    """The packets of an index, read in decoding order from any position: seeks far ahead, checks what it reads."""

    def __init__(self, video: _Video, index: PacketIndex, times: np.ndarray, order: np.ndarray) -> None:
        self.video, self.index, self.times, self.order = video, index, times, order
        self.position = -1  # index of the packet ``take`` returns next; -1 before the first seek
        self.packets: Iterator[av.Packet] = iter(())
        self.pending: av.Packet | None = None

    def frame_number(self, pts: int | None) -> int:
        number = int(np.searchsorted(self.times, pts)) if pts is not None else len(self.times)
        if number == len(self.times) or self.times[number] != pts:
            raise _Decline(f"a frame with a time no packet has ({pts})")
        return number

    def go_to(self, start: int) -> None:
        """Position at packet ``start``: seek when it is behind or far ahead, else read through."""
        if self.index.packets is not None:
            self.position = start
            return
        pos = self.index.pos
        near = 0 <= self.position <= start and 0 <= pos[self.position] and pos[start] - pos[self.position] <= SEEK_BYTES
        if not near:
            pts, dts = int(self.index.pts[start]), int(self.index.dts[start])
            target = pts if dts == NO_TIME else min(pts, dts)
            self.video.container.seek(target, stream=self.video.stream, backward=True, any_frame=False)
            self.packets = self.video.container.demux(self.video.stream)
            self.pending = self._next()
            self.position = int(self.order[self.frame_number(self.pending.pts)])
            if self.position > start:
                raise _Decline(f"seeking to packet {start} landed after it")
        while self.position < start:
            self.take()

    def take(self) -> av.Packet:
        """The next packet, checked against the index."""
        if self.index.packets is not None:
            self.position += 1
            return self.index.packets[self.position - 1]
        packet, self.pending = self.pending or self._next(), None
        if packet.pts != self.index.pts[self.position] or packet.size != self.index.size[self.position]:
            raise _Decline(f"packet {self.position} reads differently than when indexed")
        self.position += 1
        return packet

    def _next(self) -> av.Packet:
        for packet in self.packets:
            if packet.size:
                return packet
        raise _Decline("the file ended before the index did")


def _decode_sequential(path: Path, spec: ClipSpec, estimate: int | None, max_pixels: int) -> DecodedVideo:
    """Sequential decoding: one pass when ``estimate`` is the true frame count, else a second, exact pass."""
    with _open(path, max_pixels) as video:
        head = spec.sampling == "head"
        guess = list(range(spec.frames)) if head else wanted_frames(clip_indices(spec, estimate)) if estimate else []
        frames, count = read_frames(video, spec, guess, spec.frames - 1 if head else None)
        if count == 0:
            # Some decoders learn the frame size only by decoding a frame, which FFmpeg's limit then refuses.
            unknown_size = f", or frames over {max_pixels:,} pixels (--max-pixels)" if not video.stream.width else ""
            raise VideoDecodeError(f"{path}: opens but no frame decodes (damaged or empty video stream{unknown_size})")
    indices = clip_indices(spec, count)
    if head or count == estimate:
        return _assemble(frames, indices, count, "sequential")
    logger.debug("%s: %s packets, %d frames decode; reading again", path, estimate, count)
    needed = wanted_frames(indices)
    if not all(number in frames for number in needed):
        with _open(path, max_pixels) as video:
            frames, _ = read_frames(video, spec, needed, needed[-1])
    return _assemble(frames, indices, count, "sequential+recount")


def read_frames(
    video: _Video, spec: ClipSpec, wanted: list[int], stop_after: int | None = None
) -> tuple[_Frames, int]:
    """One sequential pass: decode every frame, convert only the ``wanted`` ones (sorted frame numbers).

    Returns:
        The wanted frames that exist, and the number of frames decoded (up to ``stop_after`` + 1).
    """
    codec = video.stream.codec_context
    frames = _Frames(wanted, spec)
    count = 0
    for packet in _packets_then_drain(video):
        try:
            decoded = codec.decode(packet)
        except av.error.FFmpegError as exc:  # a damaged packet: skipped, as OpenCV's reader did
            logger.debug("%s: a packet does not decode (%s)", video.path, _why(exc))
            continue
        for frame in decoded:
            if count in frames.slots:
                try:
                    frames[count] = to_clip_frame(to_bgr(frame, video.reformatter), spec)
                except av.error.FFmpegError as exc:
                    raise VideoDecodeError(f"{video.path}: frame {count} cannot be converted ({_why(exc)})") from None
            count += 1
            if stop_after is not None and count > stop_after:
                return frames, count
    return frames, count


def _packets_then_drain(video: _Video) -> Iterator[av.Packet | None]:
    """The stream's packets (until the end or a demuxing error: a cut file), then None to drain the decoder."""
    try:
        yield from (packet for packet in video.container.demux(video.stream) if packet.size)
    except av.error.FFmpegError as exc:
        logger.debug("%s: demuxing stopped (%s)", video.path, _why(exc))
    yield None


class _Frames:
    """The wanted frames of a video, resized, by frame number, in one array allocated up front: thousands of small
    arrays kept between the large short-lived ones of decoding fragment the C heap (a 1-hour video's sliding windows
    then took 10 times the memory of their frames)."""

    def __init__(self, wanted: list[int], spec: ClipSpec) -> None:
        self.numbers = np.asarray(wanted, np.int64)
        self.slots = {number: slot for slot, number in enumerate(wanted)}
        self.array = np.empty((len(wanted), spec.height, spec.width, spec.channels), np.uint8)
        self.filled: set[int] = set()

    def __setitem__(self, number: int, frame: np.ndarray) -> None:
        self.array[self.slots[number]] = frame
        self.filled.add(number)

    def __contains__(self, number: int) -> bool:
        return number in self.filled

    def __len__(self) -> int:
        return len(self.filled)


def _assemble(frames: _Frames, indices: np.ndarray, num_frames: int, method: str) -> DecodedVideo:
    clips = frames.array[np.searchsorted(frames.numbers, indices)]
    return DecodedVideo(clips=clips, frame_indices=indices.astype(np.int32), num_frames=num_frames, method=method)

