"""The AVI reader lists exactly the packets FFmpeg demuxes; the writer's files read back; bad files are declined."""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from videos import ffmpeg_exe, index_frame, write_frames, write_index_video

from video3dcnn import avi
from video3dcnn.avi import AviCutShortError, AviFormatError, AviWriter, read_video_packets
from video3dcnn.video import _packet_bytes, open_capture

HEIGHT, WIDTH = 48, 64


def opencv_packets(path: Path) -> list[bytes]:
    with open_capture(path, raw=True) as capture:
        return [_packet_bytes(capture) for _ in iter(capture.grab, False)]


def listed_packets(data: bytes) -> list[bytes]:
    return [data[offset : offset + size] for offset, size in read_video_packets(data).packets]


@pytest.fixture(scope="module")
def avi_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("avi")
    files = {
        "ffmpeg-mpeg4": write_index_video(
            directory / "mpeg4.avi", 30, "mpeg4", height=HEIGHT, width=WIDTH, gop=12
        ).path,
        "opencv-xvid": write_index_video(directory / "xvid.avi", 30, "xvid", height=HEIGHT, width=WIDTH).path,
        "opencv-mjpg": write_index_video(directory / "mjpg.avi", 30, "mjpg", height=HEIGHT, width=WIDTH).path,
    }
    # Audio as stream 0 and interleaved with the video, so the video chunks are '01dc'.
    video = files["ffmpeg-mpeg4"]
    audio_first = directory / "audio-first.avi"
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-i", str(video)]
        + ["-map", "0:a", "-map", "1:v", "-c:v", "copy", "-c:a", "pcm_s16le", "-shortest", str(audio_first)],
        check=True,
    )
    files["audio-first"] = audio_first
    return files


@pytest.mark.parametrize("name", ["ffmpeg-mpeg4", "opencv-xvid", "opencv-mjpg", "audio-first"])
def test_reader_lists_the_packets_ffmpeg_demuxes(avi_files: dict[str, Path], name: str) -> None:
    data = avi_files[name].read_bytes()
    avi = read_video_packets(data)
    assert (avi.width, avi.height) == (WIDTH, HEIGHT)
    assert listed_packets(data) == opencv_packets(avi_files[name])
    assert len(avi.packets) == 30


def test_reader_names_the_codec(avi_files: dict[str, Path]) -> None:
    assert read_video_packets(avi_files["opencv-xvid"].read_bytes()).fourcc == "XVID"
    assert read_video_packets(avi_files["opencv-mjpg"].read_bytes()).fourcc == "MJPG"
    assert read_video_packets(avi_files["ffmpeg-mpeg4"].read_bytes()).fourcc == "FMP4"


def test_writer_output_reads_back_packet_for_packet() -> None:
    packets = [bytes([i]) * (100 + i) for i in range(7)]  # odd and even sizes: the chunk padding
    handle = io.BytesIO()
    writer = AviWriter(handle, "FMP4", WIDTH, HEIGHT, extradata=b"\x00\x00\x01\xb0\x01")
    for packet in packets:
        writer.write(packet)
    writer.close()
    avi = read_video_packets(handle.getvalue())
    assert (avi.fourcc, avi.width, avi.height, avi.extradata) == ("FMP4", WIDTH, HEIGHT, b"\x00\x00\x01\xb0\x01")
    assert listed_packets(handle.getvalue()) == packets


def chunk(fourcc: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", fourcc, len(payload)) + payload + b"\x00" * (len(payload) % 2)


def riff_list(kind: bytes, form: bytes, *chunks: bytes) -> bytes:
    return chunk(kind, form + b"".join(chunks))


def test_reader_walks_rec_lists_index_chunks_and_opendml_extensions() -> None:
    """Chunks grouped in LIST 'rec ', standard index chunks, JUNK, audio, and a second RIFF 'AVIX'."""
    bitmap = struct.pack("<IiiHH4sIiiII", 40, WIDTH, -HEIGHT, 1, 24, b"XVID", 0, 0, 0, 0, 0)  # top-down: height < 0
    audio_strl = riff_list(b"LIST", b"strl", chunk(b"strh", b"auds" + bytes(52)), chunk(b"strf", bytes(16)))
    video_strl = riff_list(b"LIST", b"strl", chunk(b"strh", b"vids" + bytes(52)), chunk(b"strf", bitmap))
    hdrl = riff_list(b"LIST", b"hdrl", chunk(b"avih", bytes(56)), audio_strl, video_strl)
    movi = riff_list(
        b"LIST",
        b"movi",
        chunk(b"01dc", b"first"),
        chunk(b"00wb", b"audio"),
        riff_list(b"LIST", b"rec ", chunk(b"01dc", b"second"), chunk(b"00wb", b"sound")),
        chunk(b"JUNK", bytes(9)),
        chunk(b"ix01", bytes(24)),
    )
    extension = riff_list(b"RIFF", b"AVIX", riff_list(b"LIST", b"movi", chunk(b"01dc", b"third")))
    data = riff_list(b"RIFF", b"AVI ", hdrl, movi) + extension
    avi = read_video_packets(data)
    assert (avi.fourcc, avi.width, avi.height) == ("XVID", WIDTH, HEIGHT)
    assert listed_packets(data) == [b"first", b"second", b"third"]


def test_reader_declines_files_it_cannot_list_exactly(avi_files: dict[str, Path], tmp_path: Path) -> None:
    whole = avi_files["ffmpeg-mpeg4"].read_bytes()
    mp4 = write_frames(tmp_path / "video.mp4", [index_frame(i, HEIGHT, WIDTH) for i in range(3)], codec="h264")
    with pytest.raises(AviFormatError, match="not a RIFF AVI"):
        read_video_packets(mp4.read_bytes())
    sound = tmp_path / "sound.avi"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc", "-t", "0.2", str(sound)], check=True
    )
    with pytest.raises(AviFormatError, match="no video stream"):
        read_video_packets(sound.read_bytes())
    with pytest.raises(AviCutShortError, match="runs past the end"):  # an AviFormatError too
        read_video_packets(whole[: len(whole) // 2])
    # An idx1 entry re-tagged as audio: the index and the chunks disagree on the number of video packets.
    index = whole.rindex(b"idx1")
    entry = whole.index(b"00dc", index)
    with pytest.raises(AviFormatError, match="index lists 29 video packets"):
        read_video_packets(whole[:entry] + b"01wb" + whole[entry + 4 :])


@pytest.mark.parametrize("name", ["ffmpeg-mpeg4", "audio-first"])  # chunks back to back, and between audio chunks
def test_copied_chunks_equal_packets_written_one_by_one(avi_files: dict[str, Path], name: str) -> None:
    data = avi_files[name].read_bytes()
    packets = read_video_packets(data).packets
    outputs = []
    for copy in (False, True):
        handle = io.BytesIO()
        writer = AviWriter(handle, "FMP4", WIDTH, HEIGHT)
        for start, stop in ((0, 4), (12, 20), (24, 29)):
            if copy:
                writer.copy_chunks(data, packets[start : stop + 1])
            else:
                for offset, size in packets[start : stop + 1]:
                    writer.write(data[offset : offset + size])
        writer.close()
        outputs.append(handle.getvalue())
    assert outputs[0] == outputs[1]
    kept = np.concatenate((packets[0:5], packets[12:21], packets[24:30])).tolist()
    assert listed_packets(outputs[1]) == [data[o : o + s] for o, s in kept]


def indexed_file(index_chunks: list[tuple[bytes, int]], movi_chunks: list[bytes], absolute: bool = False) -> bytes:
    """A one-stream XviD AVI whose ``movi`` list holds ``movi_chunks`` and whose ``idx1`` lists ``index_chunks``:
    ``(tag, position of the chunk in movi_chunks)``; offsets from the ``movi`` tag, or from the file start."""
    bitmap = struct.pack("<IiiHH4sIiiII", 40, WIDTH, HEIGHT, 1, 24, b"XVID", 0, 0, 0, 0, 0)
    video_strl = riff_list(b"LIST", b"strl", chunk(b"strh", b"vids" + bytes(52)), chunk(b"strf", bitmap))
    hdrl = riff_list(b"LIST", b"hdrl", chunk(b"avih", bytes(56)), video_strl)
    movi_tag = 12 + len(hdrl) + 8  # RIFF header and form, hdrl, the movi list's header
    positions = [4 + sum(map(len, movi_chunks[:i])) for i in range(len(movi_chunks))]
    sizes = [struct.unpack_from("<I", piece, 4)[0] for piece in movi_chunks]
    entries = b"".join(
        struct.pack("<4sIII", tag, 0x10, positions[i] + (movi_tag if absolute else 0), sizes[i])
        for tag, i in index_chunks
    )
    return riff_list(b"RIFF", b"AVI ", hdrl, riff_list(b"LIST", b"movi", *movi_chunks), chunk(b"idx1", entries))


def walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the chunk walks ``read_video_packets`` makes from now on."""
    calls = []
    walk = avi._movi_packets
    monkeypatch.setattr(avi, "_movi_packets", lambda *args: (calls.append(1), walk(*args))[1])
    return calls


@pytest.mark.parametrize("name", ["ffmpeg-mpeg4", "opencv-xvid", "opencv-mjpg", "audio-first"])
def test_an_index_that_lists_every_chunk_gives_the_same_packets_as_the_walk(
    avi_files: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = avi_files[name].read_bytes()
    calls = walks(monkeypatch)
    from_index = read_video_packets(data).packets
    assert not calls  # FFmpeg's files are listed from their index
    monkeypatch.setattr(avi, "_indexed_packets", lambda *args: None)
    from_walk = read_video_packets(data).packets
    assert calls and from_walk.tolist() == from_index.tolist()


@pytest.mark.parametrize("absolute", [False, True])
def test_index_offsets_may_count_from_the_movi_tag_or_the_file_start(
    absolute: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pieces = [chunk(b"00dc", b"first"), chunk(b"01wb", b"sound"), chunk(b"00dc", b"second!")]
    data = indexed_file([(b"00dc", 0), (b"01wb", 1), (b"00dc", 2)], pieces, absolute)
    calls = walks(monkeypatch)
    assert listed_packets(data) == [b"first", b"second!"]
    assert not calls


@pytest.mark.parametrize(
    "case",
    [
        "a chunk left out of the index",
        "a size that disagrees",
        "a tag that disagrees",
        "offsets that fit no convention",
    ],
)
def test_an_index_that_does_not_describe_the_chunks_exactly_is_not_trusted(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pieces = [chunk(b"00dc", b"first"), chunk(b"JUNK", bytes(6)), chunk(b"00dc", b"second!")]
    index = [(b"00dc", 0), (b"JUNK", 1), (b"00dc", 2)]
    if case == "a chunk left out of the index":
        index = [(b"00dc", 0), (b"00dc", 2)]
    data = indexed_file(index, pieces)
    entries = data.rindex(b"idx1") + 8
    if case == "a size that disagrees":
        data = data[: entries + 12] + struct.pack("<I", 4) + data[entries + 16 :]
    elif case == "a tag that disagrees":
        data = data[: entries + 16] + b"00db" + data[entries + 20 :]
    elif case == "offsets that fit no convention":  # every entry 100 bytes further on: still back to back
        shifted = bytearray(data)
        for entry in range(entries, len(data), 16):
            struct.pack_into("<I", shifted, entry + 8, struct.unpack_from("<I", data, entry + 8)[0] + 100)
        data = bytes(shifted)
    calls = walks(monkeypatch)
    if case == "a tag that disagrees":  # the index then counts one video packet more than the chunks hold
        with pytest.raises(AviFormatError, match="index lists 3 video packets"):
            read_video_packets(data)
    else:
        assert listed_packets(data) == [b"first", b"second!"]
    assert calls
