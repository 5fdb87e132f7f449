"""AVI (RIFF) without a decoder: list the video packets of a file, and write packets that are already encoded.

The keyframe-aware decoder (``video``) reads XviD/DivX AVI files with ``read_video_packets``: the ``idx1`` index
checked against the chunks it points to, or one pass over the chunk headers, 20 to 100 times cheaper than demuxing
through OpenCV packet by packet. It copies runs of the compressed packets
into a new file with ``AviWriter`` and decodes that with OpenCV. AVI rather than a raw elementary stream because
FFmpeg opens it without probing (0.2 ms against 8 ms for a raw .m4v stream, measured). Layout (little-endian, every
chunk padded to an even size)::

    RIFF 'AVI ' ( LIST 'hdrl' ( avih, LIST 'strl' ( strh, strf = BITMAPINFOHEADER + codec extradata ) ... ),
                  LIST 'movi' ( '00dc' chunk per packet, maybe grouped in LIST 'rec ', 'ix00' index chunks ),
                  idx1 )
    RIFF 'AVIX' ( LIST 'movi' ( ... ) ) ...      (OpenDML files over 1 GiB)

The writer emits one video stream, no index, no audio, sizes patched on close.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

Buffer = bytes | bytearray | memoryview | mmap.mmap  # what the container readers parse (a whole file)

AVIH_SIZE = 56
STRH_SIZE = 56
BITMAPINFOHEADER_SIZE = 40
AVIH_TOTAL_FRAMES = 16  # offset of dwTotalFrames inside avih
STRH_LENGTH = 32  # offset of dwLength inside strh
INDEX_ENTRY = np.dtype([("tag", "S4"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])  # one idx1 entry
CHUNK_HEADER = np.dtype([("tag", "S4"), ("size", "<u4")])


def _chunk_header(fourcc: bytes, size: int) -> bytes:
    return struct.pack("<4sI", fourcc, size)


def _pad(data: bytes) -> bytes:
    return data + b"\x00" if len(data) % 2 else data


class AviWriter:
    """Write encoded video packets into an AVI file opened for binary writing (``close()`` finishes it).

    Args:
        handle: a seekable binary file.
        fourcc: the codec's four-character code (e.g. ``FMP4`` for MPEG-4 Part 2).
        width, height: frame size in pixels.
        extradata: the codec configuration record (stored after the BITMAPINFOHEADER).
        fps: nominal frame rate (timing is irrelevant to decoding order).
    """

    def __init__(self, handle: BinaryIO, fourcc: str, width: int, height: int, extradata: bytes = b"", fps: int = 25):
        self._handle = handle
        self._frames = 0
        self._start = handle.tell()
        strf = self._bitmap_info(fourcc, width, height, len(extradata)) + extradata
        strl = b"strl" + _chunk_header(b"strh", STRH_SIZE) + self._stream_header(fourcc, fps, width, height)
        strl += _chunk_header(b"strf", len(strf)) + _pad(strf)
        hdrl = b"hdrl" + _chunk_header(b"avih", AVIH_SIZE) + self._main_header(fps, width, height)
        hdrl += _chunk_header(b"LIST", len(strl)) + strl
        handle.write(_chunk_header(b"RIFF", 0) + b"AVI " + _chunk_header(b"LIST", len(hdrl)) + hdrl)
        self._avih = self._start + 12 + 8 + 4 + 8  # RIFF header, LIST header, 'hdrl', avih header
        self._strh = self._avih + AVIH_SIZE + 8 + 4 + 8  # avih, LIST header, 'strl', strh header
        self._movi = handle.tell()
        handle.write(_chunk_header(b"LIST", 0) + b"movi")

    @staticmethod
    def _main_header(fps: int, width: int, height: int) -> bytes:
        return struct.pack("<10I4I", 1_000_000 // fps, 0, 0, 0, 0, 0, 1, 0, width, height, 0, 0, 0, 0)

    @staticmethod
    def _stream_header(fourcc: str, fps: int, width: int, height: int) -> bytes:
        return struct.pack(
            "<4s4sIHHIIIIIIiI4h", b"vids", fourcc.encode(), 0, 0, 0, 0, 1, fps, 0, 0, 0, -1, 0, 0, 0, width, height
        )

    @staticmethod
    def _bitmap_info(fourcc: str, width: int, height: int, extra: int) -> bytes:
        return struct.pack(
            "<IiiHH4sIiiII",
            BITMAPINFOHEADER_SIZE + extra,
            width,
            height,
            1,
            24,
            fourcc.encode(),
            width * height * 3,
            0,
            0,
            0,
            0,
        )

    def write(self, packet: bytes | memoryview) -> None:
        """Append one packet as one frame chunk."""
        self._handle.write(_chunk_header(b"00dc", len(packet)))
        self._handle.write(packet)
        if len(packet) % 2:
            self._handle.write(b"\x00")
        self._frames += 1

    def copy_chunks(self, data: Buffer, packets: np.ndarray) -> None:
        """Append the packets of another AVI file held in ``data``, in order (``packets``: rows ``(offset, size)``).

        When they lie back to back as stream 0 chunks (the usual layout of a video-only file), their chunks are copied
        in one piece, headers and padding included; otherwise packet by packet.
        """
        if not len(packets):
            return
        offsets, sizes = packets[:, 0], packets[:, 1]
        first, last, size = int(offsets[0]), int(offsets[-1]), int(sizes[-1])
        back_to_back = np.array_equal(offsets[1:], offsets[:-1] + sizes[:-1] + (sizes[:-1] & 1) + 8)
        view = memoryview(data)
        if back_to_back and first >= 8 and view[first - 8 : first - 6] == b"00":
            self._handle.write(view[first - 8 : last + size + (size & 1)])
            self._frames += len(packets)
            return
        for offset, length in packets.tolist():
            self.write(view[offset : offset + length])

    def close(self) -> None:
        """Patch the sizes and frame counts into the headers (the handle stays open)."""
        end = self._handle.tell()
        for offset, value in (
            (self._start + 4, end - self._start - 8),
            (self._movi + 4, end - self._movi - 8),
            (self._avih + AVIH_TOTAL_FRAMES, self._frames),
            (self._strh + STRH_LENGTH, self._frames),
        ):
            self._handle.seek(offset)
            self._handle.write(struct.pack("<I", value))
        self._handle.seek(end)


@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class AviVideo:
    """The first video stream of an AVI file, as its headers and chunks describe it.

    Attributes:
        fourcc: the codec tag of the stream format (``biCompression``), upper case.
        width, height: frame size from the stream format.
        extradata: codec configuration stored after the BITMAPINFOHEADER (may be empty).
        packets: int64 ``[N, 2]``: ``(offset, size)`` of the stream's chunks' payloads in file order, one row per
            packet.
    """

    fourcc: str
    width: int
    height: int
    extradata: bytes
    packets: np.ndarray


class AviFormatError(ValueError):
    """The data is not an AVI file this reader can list exactly (not RIFF AVI, cut short, or inconsistent)."""


class AviCutShortError(AviFormatError):
    """The file ends inside one of its top-level chunks: it was cut short (an incomplete download or copy)."""


def _chunks(
    data: Buffer, start: int, end: int, overrun: type[AviFormatError] = AviFormatError
) -> Iterator[tuple[bytes, int, int]]:
    """``(fourcc, payload offset, payload size)`` of the chunks between ``start`` and ``end``; ``overrun`` is raised
    for a chunk that runs past ``end``."""
    position = start
    while position + 8 <= end:
        fourcc, size = struct.unpack_from("<4sI", data, position)
        if position + 8 + size > end:
            raise overrun(f"chunk {fourcc!r} at {position} runs past the end of its list")
        yield fourcc, position + 8, size
        position += 8 + size + (size & 1)


def _stream_format(data: Buffer, start: int, end: int) -> tuple[bool, tuple[str, int, int, bytes] | None]:
    """Whether a ``strl`` list is a video stream, and its format (fourcc, width, height, extradata)."""
    video, found = False, None
    for fourcc, offset, size in _chunks(data, start, end):
        if fourcc == b"strh" and size >= 4:
            video = bytes(data[offset : offset + 4]) == b"vids"
        elif fourcc == b"strf" and size >= BITMAPINFOHEADER_SIZE:
            _, width, height, _, _, compression = struct.unpack_from("<IiiHH4s", data, offset)
            extradata = bytes(data[offset + BITMAPINFOHEADER_SIZE : offset + size])
            found = (compression.decode("latin-1").upper(), width, abs(height), extradata)
    return video, found


def _movi_packets(data: Buffer, start: int, end: int, tags: tuple[bytes, bytes], packets: list[tuple[int, int]]):
    for fourcc, offset, size in _chunks(data, start, end):
        if fourcc in tags:
            packets.append((offset, size))
        elif fourcc == b"LIST" and bytes(data[offset : offset + 4]) == b"rec ":
            _movi_packets(data, offset + 4, offset + size, tags, packets)


def _index_count(data: Buffer, start: int, size: int, tags: tuple[bytes, bytes]) -> int:
    """Entries of an ``idx1`` index that belong to the video stream."""
    return sum(1 for (tag,) in struct.iter_unpack("<4s12x", data[start : start + size - size % 16]) if tag in tags)


def _indexed_packets(
    data: Buffer, movi: tuple[int, int], index: tuple[int, int], tags: tuple[bytes, bytes]
) -> np.ndarray | None:
    """The video packets as the ``idx1`` index lists them, when it describes the ``movi`` list exactly; else None.

    Exactly means: its entries point, back to back, at every chunk of the list from its first to its end (so no
    chunk is left out), each with the tag and size the entry gives. Offsets count from the ``movi`` tag, or from the
    start of the file (both conventions exist). ``movi`` and ``index``: ``(payload offset, size)`` of the two chunks.
    """
    count = index[1] // INDEX_ENTRY.itemsize
    if count == 0:
        return None
    entries = np.frombuffer(data, INDEX_ENTRY, count, index[0])
    first_chunk, end = movi[0] + 4, movi[0] + movi[1]
    offsets = entries["offset"].astype(np.int64)
    base = first_chunk - int(offsets[0])  # where offset 0 lies if the first entry is the first chunk
    if base not in (movi[0], 0):  # neither the 'movi' tag nor the start of the file
        return None
    headers = offsets + base
    sizes = entries["size"].astype(np.int64)
    ends = headers + 8 + sizes + (sizes & 1)
    if ends[-1] != end or not np.array_equal(headers[1:], ends[:-1]):
        return None
    found = np.frombuffer(data, np.uint8)[headers[:, None] + np.arange(CHUNK_HEADER.itemsize)].view(CHUNK_HEADER)
    if not (np.array_equal(found["tag"].ravel(), entries["tag"]) and np.array_equal(found["size"].ravel(), sizes)):
        return None
    video = np.isin(entries["tag"], tags)
    return np.stack((headers[video] + 8, sizes[video]), axis=1)


def read_video_packets(data: Buffer) -> AviVideo:
    """List the packets of the first video stream of the AVI file held in ``data`` (bytes or an ``mmap``).

    A file of one ``RIFF`` with one ``movi`` list and an ``idx1`` index that lists every chunk of it, back to back,
    is listed from the index (each entry checked against the chunk header it points to: vectorised, about 5 times
    faster); any other layout (OpenDML, ``rec `` lists, ``JUNK`` among the chunks, no index) by walking the chunks.

    Raises:
        AviFormatError: ``data`` is not a RIFF AVI file, has no video stream, or its ``idx1`` index counts a
            different number of video packets than its chunks hold (then what FFmpeg would read is unclear).
        AviCutShortError: the file ends inside a top-level chunk (an AviFormatError too).
    """
    if len(data) < 12 or struct.unpack_from("<4sI4s", data, 0)[::2] != (b"RIFF", b"AVI "):
        raise AviFormatError("not a RIFF AVI file")
    stream, video = 0, None
    tags = (b"", b"")
    lists: list[tuple[int, int]] = []
    index = None
    for riff, riff_offset, riff_size in _chunks(data, 0, len(data), AviCutShortError):
        if riff != b"RIFF":
            continue
        for fourcc, offset, size in _chunks(data, riff_offset + 4, riff_offset + riff_size):
            kind = bytes(data[offset : offset + 4]) if fourcc == b"LIST" else b""
            if kind == b"hdrl":
                for list_tag, strl, strl_size in _chunks(data, offset + 4, offset + size):
                    if list_tag != b"LIST" or bytes(data[strl : strl + 4]) != b"strl" or video is not None:
                        continue
                    is_video, found = _stream_format(data, strl + 4, strl + strl_size)
                    if is_video and found:
                        video = found
                        tags = (b"%02ddc" % stream, b"%02ddb" % stream)
                    stream += 1
            elif kind == b"movi":
                lists.append((offset, size))
            elif fourcc == b"idx1":
                index = (offset, size)
    if video is None:
        raise AviFormatError("no video stream")
    if len(lists) == 1 and index is not None and (packets := _indexed_packets(data, lists[0], index, tags)) is not None:
        return AviVideo(*video, packets)
    listed: list[tuple[int, int]] = []
    for offset, size in lists:
        _movi_packets(data, offset + 4, offset + size, tags, listed)
    if index is not None and (indexed := _index_count(data, *index, tags)) != len(listed):
        raise AviFormatError(f"the index lists {indexed} video packets, the file holds {len(listed)}")
    return AviVideo(*video, np.array(listed, np.int64).reshape(-1, 2))
