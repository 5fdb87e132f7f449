"""Just enough MPEG-4 Part 2 (ISO/IEC 14496-2) header parsing to decode XviD/DivX streams keyframe-aware, exactly.

UCF101 and many older data sets are XviD (MPEG-4 Part 2) in AVI with a keyframe every 12 frames or so. Decoding only
from the keyframe before each wanted frame is exact for such a stream when every packet holds exactly one coded I- or
P-VOP (video object plane, i.e. one frame): then packet ``i`` is decoded frame ``i``, an I-VOP is a clean restart, and
the number of packets is the true frame count. B-VOPs (reordering), packed bitstreams (two VOPs in one packet),
not-coded VOPs (which decode to no frame) and S-VOPs (global motion) break that, and ``video`` falls back to one
sequential pass.

Only headers are read: the VOL (video object layer) for the width of the time-increment field, and the first bits of
each VOP. Start codes cannot be emulated inside coded MPEG-4 Part 2 data, so a byte search finds them reliably.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from video3dcnn.avi import Buffer

START_CODE_PREFIX = b"\x00\x00\x01"
VOP_START_CODE = START_CODE_PREFIX + b"\xb6"
VOL_CODES = range(0x20, 0x30)  # video_object_layer_start_code is 0x00000120 .. 0x0000012F
EXTENDED_PAR = 0xF
RECTANGULAR = 0
GRAYSCALE_SHAPE = 3
VOP_KINDS = ("I", "P", "B", "S")  # vop_coding_type 0..3
KIND_NAMES = (*VOP_KINDS, "not-coded", "none", "packed", "bad")  # what vop_kind returns; vop_codes gives the index
NOT_CODED, NONE, PACKED = (KIND_NAMES.index(name) for name in ("not-coded", "none", "packed"))


class BitReader:
    """Reads big-endian bit fields from bytes; reading past the end raises ValueError."""

    def __init__(self, data: bytes, start: int = 0) -> None:
        self._data = data
        self._bit = start * 8

    def read(self, count: int) -> int:
        """The next ``count`` bits as an unsigned integer."""
        if self._bit + count > len(self._data) * 8:
            raise ValueError("header ends early")
        value = 0
        for _ in range(count):
            byte = self._data[self._bit // 8]
            value = (value << 1) | ((byte >> (7 - self._bit % 8)) & 1)
            self._bit += 1
        return value


@dataclass(frozen=True)
class VolHeader:
    """What the VOP headers of a stream need from its VOL header.

    Attributes:
        time_increment_bits: width of ``vop_time_increment`` (from ``vop_time_increment_resolution``).
    """

    time_increment_bits: int


def _find_vol_start(data: bytes) -> int:
    """Offset just past the first VOL start code in ``data``, or -1."""
    position = data.find(START_CODE_PREFIX)
    while position >= 0 and position + 3 < len(data):
        if data[position + 3] in VOL_CODES:
            return position + 4
        position = data.find(START_CODE_PREFIX, position + 3)
    return -1


def _skip_vol_control(bits: BitReader) -> None:
    """Skip ``vol_control_parameters`` and the VBV fields (14496-2 section 6.2.3)."""
    if bits.read(1):
        bits.read(2 + 1)  # chroma_format, low_delay
        if bits.read(1):  # vbv_parameters: 15+1+15+1+15+1+3+11+1+15+1 bits
            bits.read(79)


def parse_vol(data: bytes) -> VolHeader | None:
    """Parse the first rectangular VOL header in ``data`` (a configuration record or a first packet).

    Returns:
        The header, or None when ``data`` holds no VOL or one this module does not handle (non-rectangular shape).
    """
    start = _find_vol_start(data)
    if start < 0:
        return None
    bits = BitReader(data, start)
    try:
        bits.read(1 + 8)  # random_accessible_vol, video_object_type_indication
        verid = 1
        if bits.read(1):  # is_object_layer_identifier
            verid = bits.read(4)
            bits.read(3)
        if bits.read(4) == EXTENDED_PAR:
            bits.read(16)
        _skip_vol_control(bits)
        shape = bits.read(2)
        if shape == GRAYSCALE_SHAPE and verid != 1:
            bits.read(4)
        bits.read(1)  # marker
        resolution = bits.read(16)
    except ValueError:
        return None
    if shape != RECTANGULAR or resolution == 0:
        return None
    return VolHeader(time_increment_bits=max(1, (resolution - 1).bit_length()))


def vop_kind(packet: Buffer, vol: VolHeader, start: int = 0, end: int | None = None) -> str:
    """Classify one packet by its VOPs: ``packet[start:end]`` (a whole file's buffer can be passed without copying).

    Returns:
        ``"I"``, ``"P"``, ``"B"`` or ``"S"`` for exactly one coded VOP of that type; ``"none"`` for no VOP;
        ``"packed"`` for several VOPs; ``"not-coded"`` for a VOP that decodes to no frame; ``"bad"`` for a header
        cut short.
    """
    end = len(packet) if end is None else end
    first = packet.find(VOP_START_CODE, start, end)
    if first < 0:
        return "none"
    if packet.find(VOP_START_CODE, first + 4, end) >= 0:
        return "packed"
    # The fields needed fit in 8 bytes unless modulo_time_base runs long (a VOP more than ~40 s after the last one).
    head = packet[first + 4 : min(first + 12, end)]
    bits = len(head) * 8
    value = int.from_bytes(head, "big")
    kind = VOP_KINDS[value >> (bits - 2)] if bits >= 2 else None
    position = 2
    while position < bits and (value >> (bits - 1 - position)) & 1:  # modulo_time_base: ones ended by a zero
        position += 1
    position += 1 + 1 + vol.time_increment_bits + 1  # the zero, marker, vop_time_increment, marker
    if kind is None or position >= bits:
        return "bad" if end - first - 4 <= len(head) else _vop_kind_slow(bytes(packet[first:end]), 0, vol)
    return kind if (value >> (bits - 1 - position)) & 1 else "not-coded"


def _vop_kind_slow(packet: bytes, first: int, vol: VolHeader) -> str:
    """``vop_kind`` for a VOP header longer than 8 bytes, bit by bit."""
    bits = BitReader(packet, first + 4)
    try:
        kind = VOP_KINDS[bits.read(2)]
        while bits.read(1):
            pass
        bits.read(1 + vol.time_increment_bits + 1)
        coded = bits.read(1)
    except ValueError:
        return "bad"
    return kind if coded else "not-coded"


def config_prefix(packet: bytes) -> bytes:
    """The configuration headers (VOS/VO/VOL) that precede the first VOP of ``packet``; empty when there are none."""
    first = packet.find(VOP_START_CODE)
    return packet[:first] if first > 0 else b""


def vop_kinds(data: Buffer, packets: Sequence[tuple[int, int]] | np.ndarray, vol: VolHeader) -> list[str]:
    """``vop_kind`` of every packet ``(offset, size)`` of ``data`` (see ``vop_codes``)."""
    return [KIND_NAMES[code] for code in vop_codes(data, packets, vol).tolist()]


def vop_codes(data: Buffer, packets: Sequence[tuple[int, int]] | np.ndarray, vol: VolHeader) -> np.ndarray:
    """``vop_kind`` of every packet ``(offset, size)`` of ``data``, as indices into ``KIND_NAMES``, vectorised.

    One pass over the bytes finds every VOP start code; the header bits of the common case (one VOP, no
    ``modulo_time_base`` ones) are read for all packets at once, and ``vop_kind`` handles the rest one by one.
    About 5x faster than calling ``vop_kind`` per packet on a 10 s XviD clip.
    """
    packets = np.asarray(packets, np.int64).reshape(-1, 2)
    if not len(packets):
        return np.zeros(0, np.int8)
    buffer = np.frombuffer(data, np.uint8)
    starts = packets[:, 0]
    ends = starts + packets[:, 1]
    candidates = np.flatnonzero(buffer[3:] == VOP_START_CODE[3])
    candidates = candidates[
        (buffer[candidates] == 0) & (buffer[candidates + 1] == 0) & (buffer[candidates + 2] == 1)
    ]
    first = np.searchsorted(candidates, starts)
    counts = np.searchsorted(candidates, ends - 3) - first
    single = np.flatnonzero(counts == 1)
    positions = candidates[first[single]] + 4
    readable = ends[single] - positions >= 8
    single, positions = single[readable], positions[readable]
    words = buffer[positions[:, None] + np.arange(8)].view(">u8").ravel().astype(np.uint64)
    plain = (words >> np.uint64(61)) & np.uint64(1) == 0  # modulo_time_base is a single zero
    coded = (words >> np.uint64(63 - 5 - vol.time_increment_bits)) & np.uint64(1) == 1
    codes = np.where(counts == 0, NONE, np.where(counts > 1, PACKED, -1)).astype(np.int8)
    codes[single[plain]] = np.where(coded[plain], words[plain] >> np.uint64(62), NOT_CODED)
    for position in np.flatnonzero(codes < 0).tolist():  # read one by one
        offset, size = packets[position].tolist()
        codes[position] = KIND_NAMES.index(vop_kind(data, vol, offset, offset + size))
    return codes
