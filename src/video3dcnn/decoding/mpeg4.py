"""Just enough MPEG-4 Part 2 (ISO/IEC 14496-2) header parsing to tell what FFmpeg's demuxer cannot: what a packet holds.

The keyframe runs (``video``) count one frame per packet. In an XviD/DivX stream that holds only when every packet is
one coded I-, P- or B-VOP (video object plane: a frame); packed bitstreams (two VOPs in a packet, then an empty
placeholder), not-coded VOPs (no frame) and S-VOPs break it, and are decoded sequentially. Only headers are read: the
VOL (video object layer) for the width of the time increment, and the first bits of each VOP. Start codes cannot be
emulated inside coded MPEG-4 Part 2 data, so a byte search finds them reliably.
"""

from __future__ import annotations

from dataclasses import dataclass

START_CODE_PREFIX = b"\x00\x00\x01"
VOP_START_CODE = START_CODE_PREFIX + b"\xb6"
VOL_CODES = range(0x20, 0x30)  # video_object_layer_start_code is 0x00000120 .. 0x0000012F
EXTENDED_PAR = 0xF
RECTANGULAR = 0
GRAYSCALE_SHAPE = 3
VOP_KINDS = ("I", "P", "B", "S")  # vop_coding_type 0..3


class BitReader:
    """Reads big-endian bit fields from bytes; reading past the end raises ValueError."""

    def __init__(self, data: bytes, start: int = 0) -> None:
        self._data = data
        self._bit = start * 8

    def read(self, count: int) -> int:
        """The next ``count`` bits as an unsigned integer."""
        end = self._bit + count
        if end > len(self._data) * 8:
            raise ValueError("header ends early")
        first, last = self._bit // 8, (end + 7) // 8
        value = int.from_bytes(self._data[first:last], "big") >> (last * 8 - end)
        self._bit = end
        return value & ((1 << count) - 1)


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


def parse_vol(data: bytes) -> VolHeader | None:
    """Parse the first rectangular VOL header in ``data`` (a configuration record and/or a first packet).

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
        if bits.read(1):  # vol_control_parameters (14496-2 section 6.2.3)
            bits.read(2 + 1)  # chroma_format, low_delay
            if bits.read(1):  # vbv_parameters: 15+1+15+1+15+1+3+11+1+15+1 bits
                bits.read(79)
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


def vop_kind(packet: bytes, vol: VolHeader) -> str:
    """Classify one packet by its VOPs.

    Returns:
        ``"I"``, ``"P"``, ``"B"`` or ``"S"`` for exactly one coded VOP of that type; ``"none"`` for no VOP;
        ``"packed"`` for several VOPs; ``"not-coded"`` for a VOP that decodes to no frame; ``"bad"`` for a header
        cut short (or a ``modulo_time_base`` of over 100 seconds).
    """
    first = packet.find(VOP_START_CODE)
    if first < 0:
        return "none"
    if packet.find(VOP_START_CODE, first + 4) >= 0:
        return "packed"
    # The fields needed fit in 16 bytes unless modulo_time_base counts over 100 seconds since the previous VOP.
    window = packet[first + 4 : first + 20]
    size = len(window) * 8
    head = int.from_bytes(window, "big")
    at = 2  # after vop_coding_type
    while at < size and head >> (size - 1 - at) & 1:  # modulo_time_base: ones ended by a zero
        at += 1
    at += 1 + 1 + vol.time_increment_bits + 1  # the zero, marker, vop_time_increment, marker: at vop_coded
    if at >= size:
        return "bad"
    return VOP_KINDS[head >> (size - 2)] if head >> (size - 1 - at) & 1 else "not-coded"


def config_prefix(packet: bytes) -> bytes:
    """The configuration headers (VOS/VO/VOL) that precede the first VOP of ``packet``; empty when there are none."""
    first = packet.find(VOP_START_CODE)
    return packet[:first] if first > 0 else b""
