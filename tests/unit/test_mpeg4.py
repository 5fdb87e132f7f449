"""MPEG-4 Part 2 headers: VOP classification, one packet at a time and vectorised over a whole file."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest
from videos import index_frame, write_frames, write_index_video

from video3dcnn.avi import read_video_packets
from video3dcnn.mpeg4 import VOP_START_CODE, VolHeader, config_prefix, parse_vol, vop_kind, vop_kinds

VOL = VolHeader(time_increment_bits=5)


def vop(kind: str, coded: bool = True, seconds: int = 0, payload: bytes = b"\x55" * 12) -> bytes:
    """A VOP: start code, coding type, ``seconds`` modulo_time_base ones, time increment, vop_coded, payload."""
    bits = format("IPBS".index(kind), "02b") + "1" * seconds + "0" + "1" + "00011" + "1" + ("1" if coded else "0")
    bits += "0" * (-len(bits) % 8)
    return VOP_START_CODE + int(bits, 2).to_bytes(len(bits) // 8, "big") + payload


CASES = {
    "I": vop("I"),
    "P": vop("P"),
    "B": vop("B"),
    "S": vop("S"),
    "not-coded": vop("P", coded=False),
    "none": b"\x00\x00\x01\xb2user data only",
    "packed": vop("P") + vop("B"),
    "bad": VOP_START_CODE + b"\x10",
}


@pytest.mark.parametrize(("expected", "packet"), list(CASES.items()))
def test_vop_kind(expected: str, packet: bytes) -> None:
    assert vop_kind(packet, VOL) == expected


def test_a_long_modulo_time_base_is_read_bit_by_bit() -> None:
    assert vop_kind(vop("P", seconds=70), VOL) == "P"  # the header no longer fits the 8-byte fast path
    assert vop_kind(vop("P", coded=False, seconds=70), VOL) == "not-coded"


def test_vectorised_kinds_equal_one_by_one_on_crafted_packets() -> None:
    packets = list(CASES.values()) + [vop("I", seconds=70), vop("B", coded=False, seconds=3), vop("P", payload=b"")]
    data, offsets = b"", []
    for packet in packets:
        offsets.append((len(data) + 3, len(packet)))  # some filler between packets
        data += b"\xff\xff\xff" + packet
    assert vop_kinds(data, offsets, VOL) == [vop_kind(packet, VOL) for packet in packets]
    assert vop_kinds(data, [], VOL) == []


@pytest.mark.parametrize("source", ["gop12", "b-frames", "opencv-xvid"])
def test_vectorised_kinds_equal_one_by_one_on_encoded_files(tmp_path: Path, source: str) -> None:
    if source == "opencv-xvid":
        path = write_index_video(tmp_path / "xvid.avi", 40, "xvid", height=48, width=64).path
    else:
        frames = [index_frame(i, 48, 64) for i in range(40)]
        extra = ["-bf", "2"] if source == "b-frames" else []
        path = write_frames(tmp_path / f"{source}.avi", frames, codec="mpeg4", gop=12, extra_args=extra)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        packets = read_video_packets(data).packets
        first, size = packets[0]
        vol = parse_vol(read_video_packets(data).extradata + config_prefix(data[first : first + size]))
        kinds = vop_kinds(data, packets, vol)
        assert kinds == [vop_kind(data[offset : offset + size], vol) for offset, size in packets]
    assert kinds[0] == "I"
    assert ("B" in kinds) == (source == "b-frames")
