"""Just enough MP4 (ISO/IEC 14496-12) to decode an H.264 track without its unneeded non-reference frames, exactly.

In H.264, a frame whose slices all have ``nal_ref_idc == 0`` is never used to predict another frame: dropping it from
the stream changes no other decoded picture (the standard's own temporal scalability). x264's default B-frames are
mostly such frames: half the frames of a typical encode, decoded for nothing when a clip needs only a few. ``video``
reads the sample table of an MP4/MOV file here, drops the non-reference samples it does not need, writes the rest
into a new MP4 (``write_samples``) and decodes that with OpenCV.

Frame ``i`` of the full decode is the sample with the ``i``-th smallest composition time: the decoder outputs frames in
picture order, which is the composition order a conforming muxer writes. Files this module cannot describe exactly
are declined with ``Mp4FormatError`` (fragmented MP4, several video tracks, edit lists that hide frames, codecs other
than H.264), and are decoded in one sequential pass instead.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from video3dcnn.avi import Buffer

H264_SAMPLE_ENTRIES = (b"avc1", b"avc3")
VCL_NON_IDR, SEI, AUD, FILLER = 1, 6, 9, 12
DISPOSABLE_NAL_TYPES = frozenset({VCL_NON_IDR, SEI, AUD, FILLER})


class Mp4FormatError(ValueError):
    """The data is not an MP4 file this module can describe exactly."""


@dataclass(frozen=True)
class Mp4Video:
    """The H.264 video track of an MP4 file.

    Attributes:
        boxes: the original ``mvhd``, ``tkhd``, ``mdhd``, ``hdlr``, ``vmhd``, ``dinf`` and ``stsd`` boxes, whole,
            by type; copied into the rewritten file.
        nal_length_size: bytes of the length prefix of each NAL unit (from ``avcC``).
        offsets, sizes: where each sample (one coded frame) lies in the file, in decoding order.
        decode_times, composition_times: per sample, in the track's timescale.
        sync: 0-based indices of the sync samples (keyframes); None when every sample is one.
    """

    boxes: dict[bytes, bytes]
    nal_length_size: int
    offsets: list[int]
    sizes: list[int]
    decode_times: list[int]
    composition_times: list[int]
    sync: list[int] | None

    def display_order(self) -> list[int]:
        """The display index (frame number of a full decode) of each sample."""
        ranks = [0] * len(self.sizes)
        for rank, sample in enumerate(sorted(range(len(ranks)), key=self.composition_times.__getitem__)):
            ranks[sample] = rank
        return ranks

    def disposable(self, data: Buffer) -> list[bool]:
        """Per sample: whether no other frame refers to it (every slice non-reference, no parameter sets)."""
        result = []
        prefix = self.nal_length_size
        for offset, size in zip(self.offsets, self.sizes):
            position, end, slices, droppable = offset, offset + size, 0, True
            while droppable and position + prefix < end:
                length = int.from_bytes(data[position : position + prefix], "big")
                header = data[position + prefix]
                kind = header & 0x1F
                droppable = kind in DISPOSABLE_NAL_TYPES and not (kind == VCL_NON_IDR and header & 0x60)
                slices += kind == VCL_NON_IDR
                position += prefix + length
            result.append(droppable and slices > 0 and position == end)
        return result


def _boxes(data: Buffer, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """``(type, box start, payload start, box end)`` of the boxes between ``start`` and ``end``."""
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, position + 8)[0], 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise Mp4FormatError(f"box {kind!r} at {position} runs past the end of its parent")
        yield kind, position, position + header, position + size
        position += size


def _children(data: Buffer, start: int, end: int) -> dict[bytes, tuple[int, int, int]]:
    """The first box of each type among the children, as ``(box start, payload start, box end)``."""
    found: dict[bytes, tuple[int, int, int]] = {}
    for kind, box, payload, box_end in _boxes(data, start, end):
        found.setdefault(kind, (box, payload, box_end))
    return found


def _full_box(data: Buffer, payload: int) -> tuple[int, int]:
    """Version of a full box and the offset after its version/flags word."""
    return data[payload], payload + 4


def _table(data: Buffer, payload: int, row: str) -> list[tuple[int, ...]]:
    """The rows of a full box holding an entry count and then fixed-size entries."""
    _, position = _full_box(data, payload)
    (count,) = struct.unpack_from(">I", data, position)
    size = struct.calcsize(row)
    rows = bytes(data[position + 4 : position + 4 + count * size])
    if len(rows) != count * size:
        raise Mp4FormatError("sample table cut short")
    return list(struct.iter_unpack(row, rows))


def _expand(runs: list[tuple[int, ...]]) -> list[int]:
    return [value for count, value in runs for _ in range(count)]


def _sample_offsets(data: Buffer, stbl: dict, sizes: list[int]) -> list[int]:
    if b"stco" in stbl:
        chunks = [row[0] for row in _table(data, stbl[b"stco"][1], ">I")]
    elif b"co64" in stbl:
        chunks = [row[0] for row in _table(data, stbl[b"co64"][1], ">Q")]
    else:
        raise Mp4FormatError("no chunk offsets")
    runs = _table(data, stbl[b"stsc"][1], ">III")
    offsets: list[int] = []
    for number, (first, per_chunk, _) in enumerate(runs):
        last = runs[number + 1][0] - 1 if number + 1 < len(runs) else len(chunks)
        for chunk in range(first - 1, min(last, len(chunks))):
            position = chunks[chunk]
            for _ in range(per_chunk):
                if len(offsets) == len(sizes):
                    break
                offsets.append(position)
                position += sizes[len(offsets) - 1]
    if len(offsets) != len(sizes):
        raise Mp4FormatError("the chunk table places fewer samples than the size table holds")
    return offsets


def _check_edits(data: Buffer, trak: dict, first: int, last: int, media_scale: int, movie_scale: int) -> None:
    """Decline edit lists that would hide frames of the full decode (anything but one plain shift)."""
    if b"edts" not in trak:
        return
    elst = _children(data, trak[b"edts"][1], trak[b"edts"][2]).get(b"elst")
    if elst is None:
        return
    version, _ = _full_box(data, elst[1])
    entries = _table(data, elst[1], ">QqHH" if version else ">IiHH")
    if len(entries) != 1:
        raise Mp4FormatError(f"edit list with {len(entries)} entries")
    duration, media_time, rate, _ = entries[0]
    if rate != 1 or media_time < 0 or media_time > first:
        raise Mp4FormatError("edit list starts after the first frame")
    if duration and media_time + duration * media_scale / movie_scale <= last:
        raise Mp4FormatError("edit list ends before the last frame")


def read_h264_track(data: Buffer) -> Mp4Video:
    """Describe the one H.264 video track of the MP4/MOV file held in ``data`` (bytes or an ``mmap``).

    Raises:
        Mp4FormatError: not an MP4 file, fragmented, not exactly one video track, not H.264, an inconsistent sample
            table, a required box missing or cut short, or an edit list other than one plain shift.
    """
    try:
        return _read_h264_track(data)
    except (KeyError, IndexError, struct.error) as exc:  # a required box is missing, or shorter than its fields
        raise Mp4FormatError(f"malformed MP4 ({type(exc).__name__}: {exc})") from None


def _read_h264_track(data: Buffer) -> Mp4Video:
    top = _children(data, 0, len(data))
    if b"moov" not in top:
        raise Mp4FormatError("not an MP4 file (no moov box)")
    if b"moof" in top:
        raise Mp4FormatError("fragmented MP4")
    moov = _children(data, *top[b"moov"][1:])
    traks = []
    for kind, _, payload, end in _boxes(data, *top[b"moov"][1:]):
        if kind != b"trak":
            continue
        trak = _children(data, payload, end)
        mdia = _children(data, *trak[b"mdia"][1:])
        if bytes(data[mdia[b"hdlr"][1] + 8 : mdia[b"hdlr"][1] + 12]) == b"vide":
            traks.append((trak, mdia))
    if len(traks) != 1:
        raise Mp4FormatError(f"{len(traks)} video tracks")
    trak, mdia = traks[0]
    minf = _children(data, *mdia[b"minf"][1:])
    stbl = _children(data, *minf[b"stbl"][1:])
    stsd = stbl[b"stsd"]
    entries = list(_boxes(data, stsd[1] + 8, stsd[2]))
    if len(entries) != 1 or entries[0][0] not in H264_SAMPLE_ENTRIES:
        raise Mp4FormatError("not an H.264 track")
    avcc = _children(data, entries[0][2] + 78, entries[0][3]).get(b"avcC")  # after the VisualSampleEntry fields
    if avcc is None:
        raise Mp4FormatError("H.264 track without avcC")
    nal_length_size = (data[avcc[1] + 4] & 3) + 1

    if b"stsz" not in stbl:
        raise Mp4FormatError("no stsz sample size table")
    _, position = _full_box(data, stbl[b"stsz"][1])
    fixed, count = struct.unpack_from(">II", data, position)
    sizes = [fixed] * count if fixed else [row[0] for row in _table(data, stbl[b"stsz"][1] + 4, ">I")]
    if not sizes or len(sizes) != count:
        raise Mp4FormatError("empty or inconsistent sample size table")
    offsets = _sample_offsets(data, stbl, sizes)
    if max(offset + size for offset, size in zip(offsets, sizes)) > len(data):
        raise Mp4FormatError("samples lie past the end of the file (cut short)")
    decode_times = [0]
    for delta in _expand(_table(data, stbl[b"stts"][1], ">II")):
        decode_times.append(decode_times[-1] + delta)
    if len(decode_times) < count + 1:
        raise Mp4FormatError("time-to-sample table shorter than the sample table")
    decode_times = decode_times[:count]
    composition_times = list(decode_times)
    if b"ctts" in stbl:
        # Signed whatever the box version says, as FFmpeg reads them: QuickTime-style writers store negative
        # offsets in version-0 boxes, which the specification calls unsigned.
        shifts = _expand(_table(data, stbl[b"ctts"][1], ">Ii"))
        if len(shifts) < count:
            raise Mp4FormatError("composition offset table shorter than the sample table")
        composition_times = [time + shift for time, shift in zip(decode_times, shifts)]
    if len(set(composition_times)) != count:
        raise Mp4FormatError("two samples share a composition time")
    sync = [row[0] - 1 for row in _table(data, stbl[b"stss"][1], ">I")] if b"stss" in stbl else None
    movie_scale = struct.unpack_from(">I", data, moov[b"mvhd"][1] + (20 if data[moov[b"mvhd"][1]] else 12))[0]
    media_scale = struct.unpack_from(">I", data, mdia[b"mdhd"][1] + (20 if data[mdia[b"mdhd"][1]] else 12))[0]
    _check_edits(data, trak, min(composition_times), max(composition_times), media_scale, movie_scale or 1)

    def whole(box: tuple[int, int, int]) -> bytes:
        return bytes(data[box[0] : box[2]])

    boxes = {b"mvhd": whole(moov[b"mvhd"]), b"tkhd": whole(trak[b"tkhd"]), b"mdhd": whole(mdia[b"mdhd"])}
    boxes |= {b"hdlr": whole(mdia[b"hdlr"]), b"stsd": whole(stsd)}
    boxes |= {kind: whole(minf[kind]) for kind in (b"vmhd", b"dinf") if kind in minf}
    return Mp4Video(boxes, nal_length_size, offsets, sizes, decode_times, composition_times, sync)


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, version: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24), *parts)


def _table_box(kind: bytes, version: int, row: str, rows: list[tuple[int, int]]) -> bytes:
    return _full(kind, version, struct.pack(">I", len(rows)), *(struct.pack(row, *values) for values in rows))


def _run_lengths(values: list[int]) -> list[tuple[int, int]]:
    runs: list[list[int]] = []
    for value in values:
        if runs and runs[-1][1] == value:
            runs[-1][0] += 1
        else:
            runs.append([1, value])
    return [(count, value) for count, value in runs]


def write_samples(video: Mp4Video, data: Buffer, keep: list[int], target: BinaryIO) -> None:
    """Write an MP4 file holding only the samples ``keep`` (indices in decoding order) of ``video``'s track.

    The samples keep their decode and composition times, so the decoder outputs them in the same order and with the
    same timestamps as in the full file. One chunk, no edit list, no other tracks. Samples are copied one at a time:
    memory stays bounded by the largest frame, whatever the length of the video.
    """
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    mdat_header = struct.pack(">I4sQ", 1, b"mdat", 16 + sum(video.sizes[i] for i in keep))
    start = len(ftyp) + len(mdat_header)
    times = [video.decode_times[i] for i in keep]
    last = keep[-1]
    last_delta = (video.decode_times[last + 1] - video.decode_times[last]) if last + 1 < len(video.sizes) else 1
    deltas = [b - a for a, b in zip(times, times[1:])] + [max(last_delta, 1)]
    shifts = [video.composition_times[i] - video.decode_times[i] for i in keep]
    count = len(keep)
    stbl = [
        video.boxes[b"stsd"],
        _table_box(b"stts", 0, ">II", _run_lengths(deltas)),
        _table_box(b"ctts", 1, ">Ii", _run_lengths(shifts)),
        _full(b"stsc", 0, struct.pack(">IIII", 1, 1, count, 1)),
        _full(b"stsz", 0, struct.pack(f">II{count}I", 0, count, *(video.sizes[i] for i in keep))),
        _full(b"co64", 0, struct.pack(">IQ", 1, start)),
    ]
    if video.sync is not None:
        sync = set(video.sync)
        kept_sync = [number + 1 for number, sample in enumerate(keep) if sample in sync]
        stbl.append(_full(b"stss", 0, struct.pack(f">I{len(kept_sync)}I", len(kept_sync), *kept_sync)))
    minf = _box(b"minf", video.boxes.get(b"vmhd", b""), video.boxes.get(b"dinf", b""), _box(b"stbl", *stbl))
    mdia = _box(b"mdia", video.boxes[b"mdhd"], video.boxes[b"hdlr"], minf)
    moov = _box(b"moov", video.boxes[b"mvhd"], _box(b"trak", video.boxes[b"tkhd"], mdia))
    target.write(ftyp + mdat_header)
    for sample in keep:
        target.write(data[video.offsets[sample] : video.offsets[sample] + video.sizes[sample]])
    target.write(moov)
