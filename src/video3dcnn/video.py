"""Decoding one video into clips with OpenCV: exact frames, never a blind seek per frame.

``decode_clips(path, spec)`` is the one way a video becomes model input, used by processing and by predict alike.

How frames are found:

- Frame ``i`` is the ``i``-th frame a sequential decode produces. Container frame counts can be too high, too low or
  absent, so the count that sampling uses is always the number of frames that really decode.
- Default path, one sequential pass: ``grab()`` decodes every frame up to the last one needed and ``retrieve()``
  converts only the wanted ones. The sampling positions come from a cheap estimate of the frame count (the header of
  MP4/MOV/AVI files, a demux-only packet count for other containers); the pass runs to the end to count the frames,
  and only when the estimate turns out wrong does a second pass fetch the right frames.
- Keyframe-aware path, for MPEG-4 Part 2 (XviD/DivX) streams whose packets are one I- or P-frame each (see ``mpeg4``):
  a demux-only scan finds the true count and the keyframes (AVI files are read directly, ``avi``; other containers
  through OpenCV's demuxer); the runs from the keyframe before each wanted frame are copied, still compressed, into a
  temporary AVI and only those are decoded (about 43% of the frames of a 10 s clip with a keyframe every 12 frames).
  Used only when it decodes at most ``KEYFRAME_GAIN`` of what a sequential pass would, and not for a stream with
  display rotation (the AVI copy cannot carry it).
- Reference-frame path, for H.264 in MP4/MOV (see ``mp4``): the frames no other frame refers to (most B-frames) are
  left out of a temporary copy unless a clip needs them, and the copy is decoded (x264's default B-frames make about
  half the frames droppable). Used only when it drops at least ``1 - DROP_GAIN`` of the frames; the copy's timestamps
  must rise frame after frame, or the video is decoded sequentially.
- Both shortcuts yield bit-identical frames to a sequential pass (pinned by tests) on intact streams. A file cut
  short is decoded sequentially. Where bits are damaged inside a stream, the decoder conceals the damage with
  pixels of the picture decoded before, so the frames after it may differ between a shortcut and a full pass.
- Memory holds only the wanted frames, already resized: one clip for ``uniform``/``head``, the clips themselves for
  ``sliding``; never the whole video.

What a clip looks like: each frame is resized as a whole to ``(width, height)`` by area averaging (aspect ratio not
kept; see ``resize_frame``), then converted from OpenCV's BGR to RGB, or to one gray channel. Display rotation
metadata is applied (OpenCV's ``CAP_PROP_ORIENTATION_AUTO``, switched on explicitly): a portrait phone video is
upright before resizing.
Each decoder runs single-threaded, because one process per core scales better than decoder threads.
"""

from __future__ import annotations

import itertools
import logging
import math
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from video3dcnn.avi import AviCutShortError, AviWriter, Buffer, read_video_packets
from video3dcnn.clips import clip_indices, plan_runs, runs_cost, wanted_frames
from video3dcnn.config import ClipSpec
from video3dcnn.errors import VideoDecodeError
from video3dcnn.mp4 import read_h264_track, write_samples
from video3dcnn.mpeg4 import KIND_NAMES, NONE, config_prefix, parse_vol, vop_codes, vop_kind

try:
    import cv2
except ImportError as exc:  # pragma: no cover - depends on the installed extra
    raise ImportError(
        "video decoding needs OpenCV: pip install 'video3dcnn[processing]' (opencv-python-headless)"
    ) from exc

logger = logging.getLogger(__name__)

# Containers whose header frame count comes from a sample table or index, good enough as an estimate.
HEADER_COUNT_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".3gp", ".avi"})
# FOURCCs under which OpenCV reports MPEG-4 Part 2 video (it normalises most of them to FMP4).
MPEG4_PART2_FOURCCS = frozenset({"FMP4", "XVID", "DIVX", "DX50", "MP4V", "M4S2", "XVIX", "3IV2"})
# User data by which libavcodec recognises the encoder; with it, the decoder's bug workarounds come from the
# bitstream rather than from the container's FOURCC, so the keyframe path decodes exactly like the full file.
ENCODER_SIGNATURES = (
    b"\x00\x00\x01\xb2XviD",
    b"\x00\x00\x01\xb2DivX",
    b"\x00\x00\x01\xb2Lavc",
    b"\x00\x00\x01\xb2FFmpe",
)
KEYFRAME_GAIN = 0.75
# The H.264 path decodes a copy without the unneeded non-reference frames when it holds at most this share of them.
DROP_GAIN = 0.9
MP4_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".3gp"})


@dataclass(frozen=True)
class DecodedVideo:
    """The clips taken from one video.

    Attributes:
        clips: uint8 ``[K, T, H, W, C]``, RGB (C = 3) or gray (C = 1) per the spec; K = 1 for ``uniform`` and
            ``head``, K >= 1 for ``sliding``.
        frame_indices: int32 ``[K, T]``: which decoded frame each clip frame is.
        num_frames: frames that really decoded. For ``head`` decoding stops once the clip is complete, so this is
            then at most ``spec.frames``.
        method: ``sequential``, ``sequential+recount`` (the estimate was wrong: a second pass) or ``keyframe``.
    """

    clips: np.ndarray
    frame_indices: np.ndarray
    num_frames: int
    method: str = "sequential"


FROZEN_WARNING = (
    "every sampled frame is the same picture: a still video, or frames OpenCV could not convert (opencv-python-"
    "headless 4.13 and later return a blank or stale picture for interlaced video such as DV, AVCHD .mts or "
    "broadcast TS: install opencv-python-headless==4.12.0.88, or deinterlace such files first, e.g. "
    "ffmpeg -i IN -vf bwdif OUT.mp4)"
)


def frozen(decoded: DecodedVideo) -> bool:
    """Whether every clip frame is the same picture although at least two different frames were sampled.

    A video whose frames OpenCV fails to convert looks like this: the FFmpeg 8 inside opencv-python-headless 4.13
    and later (5.0 too; the images pin 4.12, with FFmpeg 5.1) refuses to convert interlaced frames ("Cannot convert
    interlaced to progressive frames"), yet ``retrieve`` succeeds with its conversion buffer unwritten, so every
    frame is the same blank or stale picture. A still video looks the same. Either way the clip
    shows no motion, so processing keeps it but warns (``FROZEN_WARNING``) and lists it in the manifest.
    """
    if len(np.unique(decoded.frame_indices)) < 2:
        return False
    frames = decoded.clips.reshape(-1, *decoded.clips.shape[2:])
    return bool((frames == frames[0]).all())


def decode_clips(path: Path, spec: ClipSpec) -> DecodedVideo:
    """Decode the clips ``spec`` takes from the video at ``path``.

    Args:
        path: a video file.
        spec: frames per clip, size, colour and sampling.

    Returns:
        The clips with their frame indices.

    Raises:
        VideoDecodeError: the file is missing, empty, not a video, truncated beyond use, or no frame decodes.
    """
    path = Path(path)
    _check_file(path)
    scan, cut_short = None, False
    if spec.sampling != "head" and path.suffix.lower() in MP4_SUFFIXES:
        decoded = _decode_reference_frames(path, spec)
        if decoded is not None:
            return decoded
    if spec.sampling != "head" and path.suffix.lower() == ".avi":
        scan, decoded, cut_short = _decode_avi(path, spec)  # XviD/DivX AVI: planned without OpenCV's demuxer
        if decoded is not None:
            return decoded
    with open_capture(path) as capture:
        fourcc, header_count = stream_info(capture)
        if spec.sampling == "head":  # the first frames need no frame count
            return _decode_sequential(path, spec, None, capture)
        estimate = header_count if path.suffix.lower() in HEADER_COUNT_SUFFIXES and header_count > 0 else None
        if scan is None and fourcc in MPEG4_PART2_FOURCCS:
            scan = _demux_mpeg4_packets(path)  # an AVI file was already read directly above, or could not be
            # The temporary AVI of the runs carries no display rotation: a rotated stream is decoded sequentially.
            upright = not capture.get(cv2.CAP_PROP_ORIENTATION_META)
            # In a file cut inside a keyframe, the decoder conceals the missing part with the picture decoded before
            # it, which a run from that keyframe would not have decoded: a cut-short AVI is decoded sequentially.
            usable = scan.exact and upright and not cut_short
            decoded = _decode_keyframe_runs(path, spec, scan) if usable else None
            if decoded is not None:
                return decoded
        if scan is not None:
            estimate = scan.count
        elif estimate is None:
            estimate = count_packets(path)
        return _decode_sequential(path, spec, estimate or None, capture)


def to_clip_frame(bgr: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """Turn one decoded BGR frame into a clip frame ``[H, W, C]`` (``resize_frame``, then RGB or gray)."""
    small = resize_frame(bgr, spec.width, spec.height)
    if spec.gray:
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def resize_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize ``frame`` to ``(width, height)`` by area averaging, in cheap exact halvings first.

    While both sides are even and at least twice the target, the frame is halved by averaging 2x2 blocks (exact, and
    OpenCV's fastest resize: 0.03 ms for 320x240); ``cv2.INTER_AREA`` then takes it to the target size. The same idea
    as Pillow's ``reducing_gap``: about 4x cheaper than one ``INTER_AREA`` step from 320x240 to 32x32 (0.05 against
    0.2 ms), and equally free of aliasing; pixel values differ from the one-step result by about 2 levels on average
    because the block boundaries of the halvings need not fall on those of the final step.
    """
    while (
        frame.shape[0] >= 2 * height
        and frame.shape[1] >= 2 * width
        and frame.shape[0] % 2 == 0
        and frame.shape[1] % 2 == 0
    ):
        frame = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if frame.shape[:2] == (height, width):
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def _check_file(path: Path) -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, which Python names with surrogates; OpenCV crashes on them
        raise VideoDecodeError(f"{path}: the file name is not valid UTF-8; rename the file") from None
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: empty file (0 bytes)")


@contextmanager
def open_capture(path: Path, raw: bool = False) -> Iterator[cv2.VideoCapture]:
    """Open ``path`` with OpenCV's FFmpeg backend, single-threaded; ``raw`` demuxes packets without decoding.

    Raises:
        VideoDecodeError: FFmpeg cannot open the file or finds no video stream in it.
    """
    params = [cv2.CAP_PROP_N_THREADS, 1] + ([cv2.CAP_PROP_FORMAT, -1] if raw else [])
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    try:
        if not capture.isOpened():
            raise VideoDecodeError(f"{path}: cannot open as a video (not a video file, truncated, or no video stream)")
        if not raw:
            capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        yield capture
    finally:
        capture.release()


def stream_info(capture: cv2.VideoCapture) -> tuple[str, int]:
    """The stream's FOURCC (upper case) and the container's frame count claim (0 when absent)."""
    code = int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return code.to_bytes(4, "little").decode("latin-1").upper(), int(count) if count > 0 else 0


def count_packets(path: Path) -> int:
    """Count the video packets of ``path`` without decoding them (an estimate of the frame count)."""
    count = 0
    with open_capture(path, raw=True) as capture:
        while capture.grab():
            count += 1
    return count


def _retrieve(capture: cv2.VideoCapture, path: Path, index: int, buffer: np.ndarray | None) -> np.ndarray:
    """The frame just grabbed, in BGR, written into ``buffer`` when it has the right shape (else a new array)."""
    ok, frame = capture.retrieve(buffer)
    if not ok or frame is None:
        raise VideoDecodeError(f"{path}: frame {index} decodes but cannot be converted")
    return frame


def read_frames(
    path: Path,
    spec: ClipSpec,
    wanted: Collection[int],
    stop_after: int | None = None,
    capture: cv2.VideoCapture | None = None,
    rising: bool = False,
) -> tuple[dict[int, np.ndarray], int]:
    """One sequential pass: decode every frame, convert only the ``wanted`` ones.

    Args:
        path: the video.
        spec: how to convert a frame.
        wanted: frame indices to keep (``in`` is called once per frame).
        stop_after: stop after this frame index; None decodes to the end.
        capture: an open capture of ``path`` positioned at its first frame (default: open one).
        rising: stop at the first frame whose timestamp does not rise, so the count falls short when the decoder
            puts frames out of presentation order.

    Returns:
        The wanted frames that exist, by index, and the number of frames decoded (in order, with ``rising``).
    """
    if capture is None:
        with open_capture(path) as opened:
            return read_frames(path, spec, wanted, stop_after, opened, rising)
    frames: dict[int, np.ndarray] = {}
    count, last, buffer = 0, -math.inf, None
    while (stop_after is None or count <= stop_after) and capture.grab():
        if rising:
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC)
            if stamp <= last:
                break
            last = stamp
        if count in wanted:
            buffer = _retrieve(capture, path, count, buffer)  # one full-size frame reused: 15% cheaper per frame
            frames[count] = to_clip_frame(buffer, spec)  # a new array, never a view of the buffer
        count += 1
    return frames, count


def _assemble(frames: dict[int, np.ndarray], indices: np.ndarray, num_frames: int, method: str) -> DecodedVideo:
    clips = np.stack([np.stack([frames[int(i)] for i in row]) for row in indices])
    return DecodedVideo(clips=clips, frame_indices=indices.astype(np.int32), num_frames=num_frames, method=method)


def _no_frames(path: Path) -> VideoDecodeError:
    return VideoDecodeError(f"{path}: opens but no frame decodes (damaged or empty video stream)")


@contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    """``path`` mapped read-only, unmapped on the way out.

    Unless an exception is on its way out of a function that held a view of the mapping (a numpy array or a
    memoryview, still referenced by the traceback): closing would then raise ``BufferError`` in its place (Ctrl-C
    would become a crash report), so the mapping is left to go with the traceback.
    """
    with open(path, "rb") as handle:
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield data
    finally:
        try:
            data.close()
        except BufferError:
            pass


_scratch = threading.local()


def _scratch_copy(write: Callable[[BinaryIO], None]) -> Path:
    """Let ``write`` fill this thread's scratch file from its start; return a path OpenCV can open it by.

    The file is reused from video to video (overwritten, then cut to length): creating, writing afresh and deleting a
    temporary file for every video cost about 0.3 ms, 3% of decoding a small one. On Linux it has no name
    (``O_TMPFILE``), so it disappears with the process however that ends, and OpenCV opens it through
    ``/proc/self/fd``; elsewhere it is a named temporary file, deleted when closed. A forked child makes its own.
    """
    entry = getattr(_scratch, "entry", None)
    if entry is None or entry[0] != os.getpid():
        handle = tempfile.TemporaryFile(prefix="video3dcnn-")
        path = Path(f"/proc/self/fd/{handle.fileno()}")
        if not path.exists():  # no procfs
            handle.close()
            handle = tempfile.NamedTemporaryFile(prefix="video3dcnn-")
            path = Path(handle.name)
        entry = _scratch.entry = (os.getpid(), handle, path)
    _, handle, path = entry
    handle.seek(0)
    write(handle)
    handle.truncate()
    handle.flush()
    return path


def _decode_sequential(
    path: Path, spec: ClipSpec, estimate: int | None, capture: cv2.VideoCapture | None = None
) -> DecodedVideo:
    """Sequential decoding: one pass when ``estimate`` is the true frame count, else a second, exact pass.

    ``capture``, when given, is an unused capture of ``path`` for the first pass.
    """
    if spec.sampling == "head":
        frames, count = read_frames(path, spec, range(spec.frames), spec.frames - 1, capture)
        if count == 0:
            raise _no_frames(path)
        return _assemble(frames, clip_indices(spec, count), count, "sequential")
    frames: dict[int, np.ndarray] = {}
    if estimate:
        frames, count = read_frames(path, spec, set(wanted_frames(clip_indices(spec, estimate))), None, capture)
        if count == estimate:
            return _assemble(frames, clip_indices(spec, count), count, "sequential")
        logger.debug("%s: expected %d frames, %d decode; reading again", path, estimate, count)
    else:
        count = read_frames(path, spec, (), None, capture)[1]
    if count == 0:
        raise _no_frames(path)
    indices = clip_indices(spec, count)
    needed = wanted_frames(indices)
    if not frames.keys() >= set(needed):
        frames, _ = read_frames(path, spec, set(needed), stop_after=needed[-1])
    return _assemble(frames, indices, count, "sequential+recount")


@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class PacketScan:
    """A demux-only scan of an MPEG-4 Part 2 stream.

    Attributes:
        count: video packets in the stream.
        keyframes: packet indices of I-frames.
        header: configuration headers (VOS/VOL and encoder user data) to put in front of a decoded run.
        width, height: coded frame size.
        exact: every packet is one coded I- or P-frame, the first is an I-frame and the header names its encoder, so
            packet ``i`` is decoded frame ``i`` and runs from a keyframe decode exactly as in the full file.
        offsets: int64 ``[count, 2]``, ``(offset, size)`` of every packet in the file, when the scan read an AVI file
            itself; None when it demuxed through OpenCV (the runs are then demuxed again).
    """

    count: int
    keyframes: tuple[int, ...]
    header: bytes
    width: int
    height: int
    exact: bool
    offsets: np.ndarray | None = None


def _extradata(capture: cv2.VideoCapture) -> bytes:
    """The codec configuration record the container stores apart from the packets (may be empty)."""
    index = int(capture.get(cv2.CAP_PROP_CODEC_EXTRADATA_INDEX))
    if index <= 0:
        return b""
    ok, data = capture.retrieve(None, index)
    return data.tobytes() if ok and data is not None else b""


def _packet_bytes(capture: cv2.VideoCapture) -> bytes:
    """The packet just grabbed by a raw-mode capture."""
    ok, packet = capture.retrieve()
    return packet.tobytes() if ok and packet is not None else b""


def _summarise(codes: np.ndarray, header: bytes, width: int, height: int) -> PacketScan:
    """A scan from the kind of every packet (``mpeg4.vop_codes``) and the configuration headers."""
    intra, predicted = KIND_NAMES.index("I"), KIND_NAMES.index("P")
    keyframes = tuple(np.flatnonzero(codes == intra).tolist())
    exact = (
        len(codes) > 0
        and codes[0] == intra
        and bool(np.isin(codes, (intra, predicted)).all())
        and any(signature in header for signature in ENCODER_SIGNATURES)
    )
    return PacketScan(len(codes), keyframes, header, width, height, exact)


def _scan_avi(path: Path) -> PacketScan | None:
    """Scan an MPEG-4 Part 2 AVI file by reading its chunks directly; None for other codecs or unreadable AVI."""
    try:
        with _mapped(path) as data:
            return _scan_avi_data(path, data)
    except (OSError, AviCutShortError) as exc:
        logger.debug("%s: not read as AVI (%s)", path, exc)
        return None


def _scan_avi_data(path: Path, data: Buffer) -> PacketScan | None:
    """``_scan_avi`` of the file ``path`` held in ``data``; raises AviCutShortError for a file cut short."""
    try:
        avi = read_video_packets(data)
        if avi.fourcc not in MPEG4_PART2_FOURCCS or not len(avi.packets):
            return None
        offset, size = avi.packets[0].tolist()
        header = avi.extradata + config_prefix(data[offset : offset + size])
        vol = parse_vol(header)
        codes = vop_codes(data, avi.packets, vol) if vol else np.full(len(avi.packets), NONE)
    except AviCutShortError:
        raise
    except ValueError as exc:  # AviFormatError is a ValueError; OpenCV's demuxer gets the file next
        logger.debug("%s: not read as AVI (%s)", path, exc)
        return None
    return replace(_summarise(codes, header, avi.width, avi.height), offsets=avi.packets)


def _decode_avi(path: Path, spec: ClipSpec) -> tuple[PacketScan | None, DecodedVideo | None, bool]:
    """An AVI file: its scan (None when it is not MPEG-4 Part 2 or not readable directly), when the scan is exact
    the clips from its keyframe runs (None when that path declines), and whether the file is cut short. The file is
    mapped once for all three."""
    try:
        with _mapped(path) as data:
            scan = _scan_avi_data(path, data)
            decoded = _decode_keyframe_runs(path, spec, scan, data) if scan is not None and scan.exact else None
            return scan, decoded, False
    except AviCutShortError as exc:
        logger.debug("%s: decoding every frame (%s)", path, exc)
        return None, None, True
    except OSError as exc:
        logger.debug("%s: not read as AVI (%s)", path, exc)
        return None, None, False


def scan_mpeg4_packets(path: Path) -> PacketScan:
    """Demux ``path`` without decoding and classify every packet (see ``PacketScan``).

    AVI files are read directly; other containers (and AVI files the reader declines) through OpenCV's demuxer.
    """
    if path.suffix.lower() == ".avi" and (scan := _scan_avi(path)) is not None:
        return scan
    return _demux_mpeg4_packets(path)


def _demux_mpeg4_packets(path: Path) -> PacketScan:
    """``scan_mpeg4_packets`` through OpenCV's demuxer, for any container."""
    with open_capture(path, raw=True) as capture:
        size = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        header, vol, codes = _extradata(capture), None, []
        while capture.grab():
            packet = _packet_bytes(capture)
            if not codes:
                header += config_prefix(packet)
                vol = parse_vol(header)
            codes.append(KIND_NAMES.index(vop_kind(packet, vol)) if vol else NONE)
        return _summarise(np.array(codes), header, *size)


def _write_runs(
    path: Path, scan: PacketScan, runs: list[tuple[int, int]], target: BinaryIO, data: Buffer | None = None
) -> None:
    """Copy the packets of ``runs`` into an AVI file, the configuration headers in front of the first one.

    Packets of a scan that read the AVI file itself are copied from ``data`` (that file, mapped by the caller), a run
    at a time where its chunks lie back to back; packets of a demuxed scan are demuxed again through OpenCV.
    """
    avi = AviWriter(target, "FMP4", scan.width, scan.height, scan.header)
    if scan.offsets is not None:
        (offset, size), (start, stop) = scan.offsets[runs[0][0]].tolist(), runs[0]
        avi.write(scan.header + data[offset : offset + size])
        avi.copy_chunks(data, scan.offsets[start + 1 : stop + 1])
        for start, stop in runs[1:]:
            avi.copy_chunks(data, scan.offsets[start : stop + 1])
    else:
        bounds = iter(runs)
        start, stop = next(bounds)
        prefix = scan.header
        with open_capture(path, raw=True) as capture:
            for index in itertools.count():
                if index > stop:
                    start, stop = next(bounds, (None, None))
                if start is None or not capture.grab():
                    break
                if index >= start:
                    avi.write(prefix + _packet_bytes(capture))
                    prefix = b""
    avi.close()


def _decode_keyframe_runs(
    path: Path, spec: ClipSpec, scan: PacketScan, data: Buffer | None = None
) -> DecodedVideo | None:
    """Decode only the runs from each wanted frame's keyframe; None when that saves too little or goes wrong.

    ``data``: the file, mapped; needed when the scan read the AVI file itself (``scan.offsets``).
    """
    indices = clip_indices(spec, scan.count)
    needed = wanted_frames(indices)
    runs = plan_runs(needed, scan.keyframes)
    if runs_cost(runs) > KEYFRAME_GAIN * (needed[-1] + 1):
        return None
    order = [frame for start, stop in runs for frame in range(start, stop + 1)]
    wanted = set(needed)
    try:
        copy = _scratch_copy(lambda target: _write_runs(path, scan, runs, target, data))
        frames, decoded = read_frames(copy, spec, {i for i, frame in enumerate(order) if frame in wanted})
    except (OSError, VideoDecodeError) as exc:  # no writable temporary directory, or the copy will not open
        logger.warning("%s: keyframe decoding failed (%s); decoding sequentially", path, exc)
        return None
    if decoded != len(order):
        logger.warning(
            "%s: keyframe decoding gave %d frames for %d packets; decoding sequentially", path, decoded, len(order)
        )
        return None
    return _assemble({order[i]: frame for i, frame in frames.items()}, indices, scan.count, "keyframe")


def _decode_reference_frames(path: Path, spec: ClipSpec) -> DecodedVideo | None:
    """H.264 in MP4: decode without the non-reference frames no clip needs (see ``mp4``).

    Returns None (decode sequentially) for files ``mp4`` declines, when too few frames can be dropped, or when the
    decoded copy does not give back exactly the kept frames in presentation order.
    """
    try:
        with _mapped(path) as data:
            video = read_h264_track(data)
            count = len(video.sizes)
            indices = clip_indices(spec, count)
            wanted = set(wanted_frames(indices))
            display = video.display_order()
            keep = [
                sample
                for sample, disposable in enumerate(video.disposable(data))
                if not disposable or display[sample] in wanted
            ]
            if len(keep) > DROP_GAIN * count:
                return None
            shown = sorted(display[sample] for sample in keep)  # the kept frames, in the order they decode
            copy = _scratch_copy(lambda target: write_samples(video, data, keep, target))
            positions = {i for i, frame in enumerate(shown) if frame in wanted}
            frames, in_order = read_frames(copy, spec, positions, rising=True)
    except (OSError, ValueError, struct.error, VideoDecodeError) as exc:  # Mp4FormatError is a ValueError
        logger.debug("%s: decoding every frame (%s)", path, exc)
        return None
    if in_order != len(shown):
        logger.warning(
            "%s: the copy without non-reference frames gave %d of %d frames in order; decoding sequentially",
            path,
            in_order,
            len(shown),
        )
        return None
    return _assemble({shown[i]: frame for i, frame in frames.items()}, indices, count, "reference")
