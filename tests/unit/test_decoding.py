"""Decoding through PyAV: the keyframe runs against one sequential pass and against OpenCV's own reader on every kind
of test video, exact frame indices, rotation, sampling, bad files and hostile headers."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from videos import (
    KIND_FRAMES,
    KIND_HEIGHT,
    KIND_WIDTH,
    KINDS,
    SHORTCUT_SPECS,
    assert_same_as_sequential,
    decode_clip,
    ffmpeg,
    index_frame,
    is_rgb,
    write_frames,
    write_index_video,
    write_kinds,
)

from video3dcnn.clips import uniform_indices
from video3dcnn.config import DEFAULT_MAX_PIXELS, ClipSpec
from video3dcnn.decoding import DecodedVideo, decode_clips, frozen
from video3dcnn.decoding import video as decoding
from video3dcnn.decoding.frames import resize_frame, to_clip_frame
from video3dcnn.decoding.video import PacketIndex, _decode_sequential, _plan_runs
from video3dcnn.errors import VideoDecodeError

HEIGHT, WIDTH = 48, 64
FRAMES = 40
SPEC = ClipSpec(frames=8, height=32, width=32)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_kinds(tmp_path_factory.mktemp("kinds"))


def assert_exact(decoded: DecodedVideo, num_frames: int) -> None:
    """Every clip frame shows the frame its index names, and the count is the true one."""
    assert decoded.num_frames == num_frames
    for clip, indices in zip(decoded.clips, decoded.frame_indices):
        assert decode_clip(clip) == indices.tolist()


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("spec", list(SHORTCUT_SPECS))
def test_the_runs_give_what_one_sequential_pass_gives(kinds: dict[str, Path], name: str, spec: str) -> None:
    path, spec = kinds[name], ClipSpec(**SHORTCUT_SPECS[spec])
    decoded = decode_clips(path, spec)
    assert decoded.method == "runs" if KINDS[name].runs else decoded.method.startswith("sequential")
    assert_same_as_sequential(decoded, path, spec)


@pytest.mark.parametrize("name", [name for name, kind in KINDS.items() if kind.runs])
def test_runs_read_again_from_the_file_with_seeks_give_the_same(
    kinds: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long video's packets are not kept from the index: the runs read them again, seeking to each run (here
    every run, however near), and check each packet against the index."""
    monkeypatch.setattr(decoding, "KEEP_BYTES", 0)
    monkeypatch.setattr(decoding, "SEEK_BYTES", 0)
    spec = ClipSpec(**SHORTCUT_SPECS["sliding"])
    decoded = decode_clips(kinds[name], spec)
    if name not in ("mpeg1-raw-stream", "h264-ts", "mpeg2-ts"):  # no index to seek by: may decline, exactly
        assert decoded.method == "runs"
    assert_same_as_sequential(decoded, kinds[name], spec)


@pytest.mark.parametrize("name", [name for name, kind in KINDS.items() if kind.intact and not kind.turns])
def test_every_frame_is_the_frame_its_index_names(kinds: dict[str, Path], name: str) -> None:
    decoded = decode_clips(kinds[name], ClipSpec(frames=7, height=24, width=40))
    assert decoded.clips.shape == (1, 7, 24, 40, 3) and decoded.clips.dtype == np.uint8  # (height, width) not swapped
    assert all(is_rgb(frame) for frame in decoded.clips[0])
    if name == "mp4-edit-list-hiding-frames":  # the frames before 0.5 s (25 fps) decode but are not shown
        hidden = decode_clip(decoded.clips[0])[0]
        assert hidden in (12, 13) and decoded.num_frames == KIND_FRAMES - hidden
        assert decode_clip(decoded.clips[0]) == [i + hidden for i in decoded.frame_indices[0].tolist()]
    else:
        assert decoded.frame_indices.tolist() == [uniform_indices(KIND_FRAMES, 7).tolist()]
        assert_exact(decoded, KIND_FRAMES)


def opencv_frames(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` as OpenCV's FFmpeg reader gives it (BGR, display rotation applied)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    frames = [frame for ok, frame in iter(capture.read, (False, None)) if ok]
    capture.release()
    return frames


def pinned_opencv() -> str:
    """The opencv-python-headless version both images pin."""
    requirements = Path(__file__).resolve().parents[2] / "docker" / "requirements-processing.txt"
    return re.search(r"^opencv-python-headless==([\d.]+)", requirements.read_text(), re.M)[1]


@pytest.mark.skipif(
    not pinned_opencv().startswith(cv2.__version__ + "."), reason="needs the OpenCV wheel the images pin"
)
@pytest.mark.parametrize("name", [name for name, kind in KINDS.items() if kind.intact])
@pytest.mark.parametrize("spec", ["full size", "32x32 gray"])
def test_clips_equal_those_from_opencvs_own_reader(kinds: dict[str, Path], name: str, spec: str) -> None:
    """Shards must not change with the decoder: the clips equal, bit for bit, those made from the frames that
    opencv-python-headless 4.12 (FFmpeg 5.1) reads itself, interlaced and rotated video included."""
    turned = KINDS[name].turns % 2
    height, width = (KIND_WIDTH, KIND_HEIGHT) if turned else (KIND_HEIGHT, KIND_WIDTH)
    spec = ClipSpec(12, height, width) if spec == "full size" else ClipSpec(12, 32, 32, gray=True)
    decoded = decode_clips(kinds[name], spec)
    reference = opencv_frames(kinds[name])
    assert decoded.num_frames == len(reference)
    expected = np.stack([to_clip_frame(reference[i], spec) for i in decoded.frame_indices[0]])
    assert np.array_equal(decoded.clips[0], expected)


@pytest.mark.parametrize("name", ["h264-rotated-mp4", "mpeg4-rotated-mp4"])
def test_display_rotation_is_applied(kinds: dict[str, Path], name: str) -> None:
    kind = KINDS[name]
    upright = decode_clips(kinds[kind.source], ClipSpec(frames=4, height=KIND_HEIGHT, width=KIND_WIDTH))
    turned = decode_clips(kinds[name], ClipSpec(frames=4, height=KIND_WIDTH, width=KIND_HEIGHT))
    for original, shown in zip(upright.clips[0], turned.clips[0]):
        assert np.array_equal(np.rot90(original, kind.turns), shown)  # counter-clockwise, as a player shows it


def test_head_and_gray(kinds: dict[str, Path]) -> None:
    spec = ClipSpec(frames=5, height=32, width=32, gray=True, sampling="head")
    decoded = decode_clips(kinds["h264-long-gop-mp4"], spec)
    assert decoded.clips.shape == (1, 5, 32, 32, 1)
    assert decoded.frame_indices.tolist() == [[0, 1, 2, 3, 4]]
    assert decode_clip(decoded.clips[0]) == [0, 1, 2, 3, 4]
    assert decoded.num_frames == 5  # head stops decoding once the clip is complete


def test_sliding_yields_every_full_window(kinds: dict[str, Path]) -> None:
    spec = ClipSpec(frames=4, height=32, width=32, sampling="sliding", frame_step=2, clip_stride=10)
    decoded = decode_clips(kinds["h264-mkv"], spec)
    assert decoded.frame_indices.tolist() == [[s, s + 2, s + 4, s + 6] for s in range(0, KIND_FRAMES - 6, 10)]
    assert_exact(decoded, KIND_FRAMES)


def test_short_video_repeats_indices(video_dir: Path) -> None:
    path = write_index_video(video_dir / "short.mp4", 5, "h264", height=HEIGHT, width=WIDTH).path
    uniform = decode_clips(path, ClipSpec(frames=8, height=32, width=32))
    assert uniform.frame_indices.tolist() == [[0, 1, 1, 2, 2, 3, 3, 4]]
    assert_exact(uniform, 5)
    head = decode_clips(path, ClipSpec(frames=8, height=32, width=32, sampling="head"))
    assert decode_clip(head.clips[0]) == [0, 1, 2, 3, 4, 4, 4, 4]
    sliding = decode_clips(path, ClipSpec(frames=8, height=32, width=32, sampling="sliding"))
    assert sliding.frame_indices.tolist() == [[0, 1, 2, 3, 4, 4, 4, 4]]


@pytest.mark.parametrize("estimate", [None, KIND_FRAMES - 9, KIND_FRAMES - 1, KIND_FRAMES + 1, 3 * KIND_FRAMES])
def test_a_wrong_packet_count_still_gives_exact_clips(kinds: dict[str, Path], estimate: int | None) -> None:
    decoded = _decode_sequential(kinds["h264-mp4"], ClipSpec(frames=5, height=32, width=32), estimate, 1 << 24)
    assert decoded.method == ("sequential" if estimate == KIND_FRAMES else "sequential+recount")
    assert decoded.frame_indices.tolist() == [uniform_indices(KIND_FRAMES, 5).tolist()]
    assert_exact(decoded, KIND_FRAMES)


def test_a_header_claiming_a_billion_frames_is_not_believed(kinds: dict[str, Path]) -> None:
    """The AVI headers claim 10^9 frames: sliding windows over that many would take 7 GiB of indices alone."""
    data = bytearray(kinds["mpeg4-avi"].read_bytes())
    for tag, offset in ((b"avih", 16), (b"strh", 32)):
        at = data.index(tag) + 8 + offset
        data[at : at + 4] = (10**9).to_bytes(4, "little")
    path = kinds["mpeg4-avi"].with_name("billion.avi")
    path.write_bytes(bytes(data))
    decoded = decode_clips(path, ClipSpec(frames=4, height=16, width=16, sampling="sliding", clip_stride=1))
    assert decoded.num_frames == KIND_FRAMES and len(decoded.clips) == KIND_FRAMES - 3


def patched_box(data: bytes, box: bytes, offset: int, value: int) -> bytes:
    """``data`` with the 32-bit field ``offset`` bytes into the payload of its first ``box`` set to ``value``."""
    patched = bytearray(data)
    at = patched.index(box) + 4 + offset
    patched[at : at + 4] = struct.pack(">I", value)
    return bytes(patched)


def peak_memory_of_decoding(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int]:
    """Decode ``path`` in a fresh process: its one-line outcome and the peak memory it grew by (MiB)."""
    code = (
        "import resource, sys\n"
        "from video3dcnn.config import ClipSpec\n"
        "from video3dcnn.decoding import decode_clips\n"
        "from video3dcnn.errors import VideoDecodeError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    decoded = decode_clips(sys.argv[1], ClipSpec(frames=4, height=16, width=16), {max_pixels})\n"
        "    outcome = f'{decoded.num_frames} frames'\n"
        "except VideoDecodeError as exc:\n"
        "    outcome = str(exc)\n"
        "print(outcome)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    outcome, grown = result.stdout.splitlines()
    return outcome, int(grown)


@pytest.mark.parametrize(
    ("box", "offset"),
    [(b"stsz", 8), (b"stts", 4), (b"stts", 8), (b"ctts", 4), (b"stsc", 4), (b"stco", 4), (b"stss", 4)],
)
@pytest.mark.parametrize("count", [10**9, 4 * 10**9])
def test_sample_tables_claiming_billions_cost_no_memory(kinds: dict[str, Path], box, offset, count) -> None:
    """A 4 KB MP4 whose sample tables claim 10^9 or 4x10^9 entries or samples: refused with a one-line reason, or
    decoded for what it really holds; either way without allocating what the header claims."""
    path = kinds["h264-mp4"].with_name(f"{box.decode()}-{offset}-{count}.mp4")
    path.write_bytes(patched_box(kinds["h264-mp4"].read_bytes(), box, offset, count))
    outcome, grown = peak_memory_of_decoding(path)
    assert outcome == f"{KIND_FRAMES} frames" or outcome.startswith(f"{path}: cannot open as a video")
    assert grown < 100


def _exp_golomb(value: int) -> str:
    code = bin(value + 1)[2:]
    return "0" * (len(code) - 1) + code


def _read_exp_golomb(bits: str, at: int) -> tuple[int, int]:
    """The value of the Exp-Golomb code at bit ``at`` and the position after it."""
    zeros = len(bits[at:]) - len(bits[at:].lstrip("0"))
    return int(bits[at : at + 2 * zeros + 1], 2) - 1, at + 2 * zeros + 1


def huge_h264(source: Path, target: Path, side: int, header: bool) -> Path:
    """Copy a baseline-profile H.264 MP4, its sequence parameter set (and, with ``header``, the MP4 headers) saying
    the frames are ``side`` x ``side`` pixels."""
    data = bytearray(source.read_bytes())
    avcc = data.index(b"avcC") - 4
    (length,) = struct.unpack(">H", data[avcc + 14 : avcc + 16])  # box header, 5 bytes of fields, count, length
    sps = bytes(data[avcc + 16 : avcc + 16 + length])
    bits = "".join(f"{byte:08b}" for byte in re.sub(b"\x00\x00\x03", b"\x00\x00", sps[1:]))
    at = 24  # profile (66: no chroma fields), constraint flags, level
    for _ in range(3):  # seq_parameter_set_id, log2_max_frame_num_minus4, pic_order_cnt_type
        poc_type, at = _read_exp_golomb(bits, at)
    if poc_type == 0:
        at = _read_exp_golomb(bits, at)[1]
    at = _read_exp_golomb(bits, at)[1] + 1  # max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
    rest = _read_exp_golomb(bits, _read_exp_golomb(bits, at)[1])[1]  # past the width and height in macroblocks
    new = bits[:at] + 2 * _exp_golomb(side // 16 - 1) + bits[rest : bits.rindex("1")] + "1"
    new += "0" * (-len(new) % 8)
    rbsp = bytes(int(new[i : i + 8], 2) for i in range(0, len(new), 8))
    new_sps = sps[:1] + re.sub(b"\x00\x00(?=[\x00-\x03])", b"\x00\x00\x03", rbsp)
    data[avcc + 14 : avcc + 16 + length] = struct.pack(">H", len(new_sps)) + new_sps
    for box in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"avc1", b"avcC"):  # moov is last: no offsets
        at = data.index(box) - 4
        data[at : at + 4] = struct.pack(">I", struct.unpack(">I", data[at : at + 4])[0] + len(new_sps) - length)
    if header:
        at = data.index(b"avc1") + 4 + 24  # the VisualSampleEntry's width and height
        data[at : at + 4] = struct.pack(">HH", side, side)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("header", [True, False], ids=["header-and-stream", "stream-only"])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_a_16000x16000_video_is_refused_before_any_frame_is_allocated(
    video_dir: Path, header: bool, suffix: str
) -> None:
    """One 16000x16000 frame takes 384 MB; such a file is refused with the limit and how to raise it."""
    frames = [index_frame(i, HEIGHT, WIDTH) for i in range(10)]
    small = write_frames(video_dir / "baseline.mp4", frames, codec="h264", extra_args=["-profile:v", "baseline"])
    path = huge_h264(small, video_dir / f"huge-{header}.mp4", 16000, header)
    if suffix != ".mp4":
        path, source = path.with_suffix(suffix), path
        ffmpeg("-max_pixels", "1000", "-i", str(source), "-c", "copy", str(path))
    outcome, grown = peak_memory_of_decoding(path)
    assert outcome == (
        f"{path}: frames of 16000x16000 pixels are over the limit of 16,777,216 pixels per frame "
        "(raise it with --max-pixels)"
    )
    assert grown < 150  # FFmpeg's per-macroblock tables while probing the stream: about 80 MB


def test_the_pixel_limit_can_be_raised_and_lowered(kinds: dict[str, Path]) -> None:
    with pytest.raises(VideoDecodeError, match=r"64x48 pixels are over the limit of 3,071 pixels per frame"):
        decode_clips(kinds["h264-mp4"], SPEC, max_pixels=KIND_WIDTH * KIND_HEIGHT - 1)
    assert decode_clips(kinds["h264-mp4"], SPEC, max_pixels=KIND_WIDTH * KIND_HEIGHT).num_frames == KIND_FRAMES


@pytest.fixture(scope="module")
def bad_files(video_dir: Path, kinds: dict[str, Path]) -> dict[str, Path]:
    bad = video_dir / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "text.mp4").write_text("this is not a video\n")
    mp4 = kinds["h264-mp4"].read_bytes()
    (bad / "truncated.mp4").write_bytes(mp4[: len(mp4) // 3])  # the index (moov) sits at the end
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(bad / "audio-only.mp4"))
    ffmpeg("-f", "lavfi", "-i", "color=size=64x48:duration=1", "-frames:v", "0", "-c:v", "mjpeg", str(bad / "zero.avi"))
    mdat, moov = mp4.index(b"mdat") + 4, mp4.index(b"moov") - 4  # every coded byte zeroed: nothing decodes
    (bad / "undecodable.mp4").write_bytes(mp4[:mdat] + bytes(moov - mdat) + mp4[moov:])
    mjpg = kinds["mjpg-avi"].read_bytes()
    (bad / "unknown-codec.avi").write_bytes(mjpg.replace(b"MJPG", b"ZZZZ"))  # a FOURCC no decoder claims
    name = bad / b"caf\xe9.mp4".decode("utf-8", "surrogateescape")  # Latin-1 bytes: not UTF-8
    (bad / "placeholder").write_bytes(mp4)
    (bad / "placeholder").rename(name)
    return {path.stem: path for path in bad.iterdir() if path.stem.isascii()} | {
        "missing": bad / "missing.mp4",
        "not-utf8": name,
    }


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file"),
        ("text", "cannot open as a video"),
        ("truncated", "cannot open as a video"),
        ("audio-only", "no video stream"),
        ("zero", "no frame decodes"),
        ("undecodable", "no frame decodes"),
        ("unknown-codec", "no decoder for its video codec"),
        ("missing", "no such file"),
        ("not-utf8", "not valid UTF-8"),
    ],
)
@pytest.mark.parametrize("sampling", ["uniform", "head"])
def test_bad_files_raise_a_one_line_reason(bad_files: dict[str, Path], name: str, reason: str, sampling) -> None:
    with pytest.raises(VideoDecodeError, match=reason) as info:
        decode_clips(bad_files[name], ClipSpec(sampling=sampling))
    assert "\n" not in str(info.value)
    assert str(bad_files[name]) in str(info.value)


def test_a_damaged_packet_is_skipped_not_raised(kinds: dict[str, Path]) -> None:
    """PyAV raises where OpenCV's reader carried on: a packet that fails to decode is skipped, per packet."""
    data = bytearray(kinds["mpeg4-avi"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = bytes(range(256)) + bytes(144)  # garbage inside a frame's coded data
    path = kinds["mpeg4-avi"].with_name("damaged.avi")
    path.write_bytes(bytes(data))
    for sampling in ("uniform", "sliding"):
        decoded = decode_clips(path, ClipSpec(frames=6, height=16, width=16, sampling=sampling))
        assert KIND_FRAMES - 2 <= decoded.num_frames <= KIND_FRAMES


def test_runs_plan_from_the_keyframe_a_frame_follows_on_screen() -> None:
    """Open GOP: the frames shown just before a keyframe are decoded after it but refer to the GOP before, so their
    run starts a keyframe earlier; the others start at their own keyframe; touching runs merge."""
    # decoding order: I0 P3 B1 B2 | I6 B4 B5 P9 B7 B8 (keyframes at packets 0 and 4)
    pts = np.array([0, 3, 1, 2, 6, 4, 5, 9, 7, 8])
    index = PacketIndex(pts, pts, -np.ones(10, int), np.ones(10, int), np.isin(np.arange(10), [0, 4]), None, None)
    assert _plan_runs(index, np.array([4])) == [(4, 4)]
    assert _plan_runs(index, np.array([8])) == [(4, 8)]
    assert _plan_runs(index, np.array([5])) == [(0, 5)]  # B4: shown before I6
    assert _plan_runs(index, np.array([0, 9])) == [(0, 0), (4, 9)]


def test_a_packet_that_is_not_one_mpeg4_frame_means_one_sequential_pass(
    kinds: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packed B-frames and not-coded VOPs look like frames to FFmpeg's demuxer; the VOP check sends them to the
    sequential pass (here one packet is made to read as packed)."""
    calls = []

    def packed_fifth(packet: bytes, vol) -> str:
        calls.append(len(packet))
        return "packed" if len(calls) == 5 else "P"

    monkeypatch.setattr(decoding, "vop_kind", packed_fifth)
    decoded = decode_clips(kinds["mpeg4-bframes-avi"], SPEC)
    assert decoded.method == "sequential" and len(calls) == 5  # no more packets read once one is not a frame
    assert_exact(decoded, KIND_FRAMES)


def test_frozen_means_one_picture_for_several_sampled_frames() -> None:
    still = np.zeros((1, 4, 8, 8, 3), np.uint8)
    assert not frozen(DecodedVideo(still, np.zeros((1, 4), np.int32), 1))  # one frame repeated: nothing to warn of
    assert frozen(DecodedVideo(still, np.array([[0, 3, 6, 9]], np.int32), 10))
    moving = still.copy()
    moving[0, 2, 0, 0, 0] = 1
    assert not frozen(DecodedVideo(moving, np.array([[0, 3, 6, 9]], np.int32), 10))


def test_resize_frame_is_area_averaging() -> None:
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 2)  # detail at 2-4 px
    small = resize_frame(frame, 32, 32)
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    one_step = cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA).astype(int)
    aliased = cv2.resize(frame, (32, 32), interpolation=cv2.INTER_LINEAR)
    # Within a level of one INTER_AREA step on average; a resize that aliases is 4-5 levels off.
    assert np.abs(small - one_step).mean() < 1 < 4 < np.abs(aliased - one_step).mean()
    # 8x8 flat blocks: every output pixel is exactly its block's value, halvings or not.
    blocks = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(resize_frame(np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1), 32, 32), blocks)
    # No halving applies (odd size, or less than twice the target): exactly one INTER_AREA step.
    odd = frame[:239]
    assert np.array_equal(resize_frame(odd, 32, 32), cv2.resize(odd, (32, 32), interpolation=cv2.INTER_AREA))
    assert np.array_equal(resize_frame(frame, 200, 150), cv2.resize(frame, (200, 150), interpolation=cv2.INTER_AREA))
    assert resize_frame(frame, 320, 240) is frame
