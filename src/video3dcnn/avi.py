"""A minimal AVI 1.0 writer for packets that are already encoded: one video stream, no index, no audio.

The keyframe-aware decoder copies runs of compressed MPEG-4 Part 2 packets into such a file and decodes it with
OpenCV. AVI rather than a raw elementary stream because FFmpeg opens it without probing (0.2 ms against 8 ms for a
raw .m4v stream, measured). Layout (RIFF, little-endian; sizes patched on close)::

    RIFF 'AVI ' ( LIST 'hdrl' ( avih, LIST 'strl' ( strh, strf = BITMAPINFOHEADER + codec extradata ) ),
                  LIST 'movi' ( '00dc' chunk per packet, each padded to an even size ) )
"""

from __future__ import annotations

import struct
from typing import BinaryIO

AVIH_SIZE = 56
STRH_SIZE = 56
BITMAPINFOHEADER_SIZE = 40
AVIH_TOTAL_FRAMES = 16  # offset of dwTotalFrames inside avih
STRH_LENGTH = 32  # offset of dwLength inside strh


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
        strf = _pad(self._bitmap_info(fourcc, width, height, len(extradata)) + extradata)
        strl = b"strl" + _chunk_header(b"strh", STRH_SIZE) + self._stream_header(fourcc, fps, width, height)
        strl += _chunk_header(b"strf", len(strf)) + strf
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

    def write(self, packet: bytes) -> None:
        """Append one packet as one frame chunk."""
        self._handle.write(_chunk_header(b"00dc", len(packet)) + _pad(packet))
        self._frames += 1

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
