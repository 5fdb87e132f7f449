"""MPEG-4 Part 2 headers: VOP classification of crafted packets and of every packet of encoded files."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from videos import index_frame, write_frames, write_index_video

from video3dcnn.decoding.mpeg4 import VOP_START_CODE, VolHeader, config_prefix, parse_vol, vop_kind

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


def test_a_long_modulo_time_base_is_read() -> None:
    assert vop_kind(vop("P", seconds=70), VOL) == "P"  # a VOP 70 s after the previous synchronisation point
    assert vop_kind(vop("P", coded=False, seconds=70), VOL) == "not-coded"


def test_a_modulo_time_base_past_the_header_window_is_not_read() -> None:
    assert vop_kind(vop("P", seconds=130), VOL) == "bad"  # what cannot be told sends the video to one full pass


@pytest.mark.parametrize("source", ["gop12", "b-frames", "opencv-xvid", "opencv-mp4v"])
def test_every_packet_of_an_encoded_file_is_one_coded_frame(tmp_path: Path, source: str) -> None:
    """The VOL comes from the first packet (AVI) or the codec configuration (MP4); the kinds match the encoder's."""
    if source.startswith("opencv"):
        codec, suffix = ("xvid", ".avi") if source == "opencv-xvid" else ("mp4v", ".mp4")
        path = write_index_video(tmp_path / f"{source}{suffix}", 40, codec, height=48, width=64).path
    else:
        frames = [index_frame(i, 48, 64) for i in range(40)]
        extra = ["-bf", "2"] if source == "b-frames" else []
        path = write_frames(tmp_path / f"{source}.avi", frames, codec="mpeg4", gop=12, extra_args=extra)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [bytes(packet) for packet in container.demux(stream) if packet.size]
        vol = parse_vol(bytes(stream.codec_context.extradata or b"") + config_prefix(packets[0]))
        kinds = [vop_kind(packet, vol) for packet in packets]
    assert vol is not None and len(kinds) == 40
    assert kinds[0] == "I" and set(kinds) <= {"I", "P", "B"}
    assert ("B" in kinds) == (source == "b-frames")
