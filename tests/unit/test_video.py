"""Decoding: exact frame indices on many codecs and containers, lying headers, keyframe runs, rotation, bad files."""

from __future__ import annotations

import multiprocessing
import re
import subprocess
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from videos import (
    SHORTCUT_SPECS,
    assert_same_as_sequential,
    decode_clip,
    ffmpeg_exe,
    index_frame,
    is_rgb,
    write_frames,
    write_index_video,
)

from video3dcnn import video
from video3dcnn.avi import AviFormatError, AviWriter, read_video_packets
from video3dcnn.clips import uniform_indices
from video3dcnn.config import ClipSpec
from video3dcnn.errors import VideoDecodeError
from video3dcnn.video import (
    DecodedVideo,
    _decode_sequential,
    _packet_bytes,
    decode_clips,
    frozen,
    open_capture,
    read_frames,
    resize_frame,
    scan_mpeg4_packets,
)

HEIGHT, WIDTH = 48, 64
FRAMES = 40

# name -> (codec, suffix, keyframe interval)
CODECS = {
    "mjpg-avi": ("mjpg", ".avi", None),
    "mp4v-mp4": ("mp4v", ".mp4", None),
    "xvid-avi": ("xvid", ".avi", None),
    "h264-long-gop-mp4": ("h264", ".mp4", 250),
    "h264-mkv-no-frame-count": ("h264", ".mkv", 250),
    "mpeg4-gop12-avi": ("mpeg4", ".avi", 12),
    "vp9-webm": ("vp9", ".webm", None),
    "mjpeg-mov": ("mjpeg", ".mov", None),
}


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="module")
def codec_videos(video_dir: Path) -> dict[str, Path]:
    videos = {}
    for name, (codec, suffix, gop) in CODECS.items():
        videos[name] = write_index_video(
            video_dir / f"{name}{suffix}", FRAMES, codec, height=HEIGHT, width=WIDTH, gop=gop
        ).path
    return videos


@pytest.fixture(scope="module")
def long_mpeg4(video_dir: Path) -> dict[str, Path]:
    """120-frame MPEG-4 Part 2 videos with a keyframe every 12 frames: ffmpeg's encoder and OpenCV's writers."""
    return {
        "opencv-mp4v-in-mp4": write_index_video(
            video_dir / "long-mp4v.mp4", 120, "mp4v", height=HEIGHT, width=WIDTH
        ).path,
        "ffmpeg-mpeg4": write_index_video(
            video_dir / "long-mpeg4.avi", 120, "mpeg4", height=HEIGHT, width=WIDTH, gop=12
        ).path,
        "opencv-xvid": write_index_video(video_dir / "long-xvid.avi", 120, "xvid", height=HEIGHT, width=WIDTH).path,
    }


def assert_exact(decoded, num_frames: int) -> None:
    """Every clip frame shows the frame its index names, and the indices are the uniform ones of the true count."""
    assert decoded.num_frames == num_frames
    for clip, indices in zip(decoded.clips, decoded.frame_indices):
        assert decode_clip(clip) == indices.tolist()


@pytest.mark.parametrize("name", list(CODECS))
def test_uniform_clip_has_exact_frames_rgb_and_the_requested_size(codec_videos: dict[str, Path], name: str) -> None:
    decoded = decode_clips(codec_videos[name], ClipSpec(frames=7, height=24, width=40))
    assert decoded.clips.shape == (1, 7, 24, 40, 3)  # (height, width) not swapped
    assert decoded.clips.dtype == np.uint8
    assert decoded.frame_indices.dtype == np.int32
    assert decoded.frame_indices.tolist() == [uniform_indices(FRAMES, 7).tolist()]
    assert_exact(decoded, FRAMES)
    assert all(is_rgb(frame) for frame in decoded.clips[0])


def test_head_and_gray(codec_videos: dict[str, Path]) -> None:
    decoded = decode_clips(
        codec_videos["h264-long-gop-mp4"], ClipSpec(frames=5, height=32, width=32, gray=True, sampling="head")
    )
    assert decoded.clips.shape == (1, 5, 32, 32, 1)
    assert decoded.frame_indices.tolist() == [[0, 1, 2, 3, 4]]
    assert decode_clip(decoded.clips[0]) == [0, 1, 2, 3, 4]
    assert decoded.num_frames == 5  # head stops decoding once the clip is complete


def test_sliding_yields_every_full_window(codec_videos: dict[str, Path]) -> None:
    spec = ClipSpec(frames=4, height=32, width=32, sampling="sliding", frame_step=2, clip_stride=10)
    decoded = decode_clips(codec_videos["h264-mkv-no-frame-count"], spec)
    assert decoded.frame_indices.tolist() == [[s, s + 2, s + 4, s + 6] for s in (0, 10, 20, 30)]
    assert decoded.clips.shape == (4, 4, 32, 32, 3)
    assert_exact(decoded, FRAMES)


def test_short_video_repeats_indices(video_dir: Path) -> None:
    path = write_index_video(video_dir / "short.mp4", 5, "h264", height=HEIGHT, width=WIDTH).path
    uniform = decode_clips(path, ClipSpec(frames=8, height=32, width=32))
    assert uniform.frame_indices.tolist() == [[0, 1, 1, 2, 2, 3, 3, 4]]
    assert_exact(uniform, 5)
    head = decode_clips(path, ClipSpec(frames=8, height=32, width=32, sampling="head"))
    assert decode_clip(head.clips[0]) == [0, 1, 2, 3, 4, 4, 4, 4]
    sliding = decode_clips(path, ClipSpec(frames=8, height=32, width=32, sampling="sliding"))
    assert sliding.frame_indices.tolist() == [[0, 1, 2, 3, 4, 4, 4, 4]]


@pytest.mark.parametrize("source", ["ffmpeg-mpeg4", "opencv-xvid", "opencv-mp4v-in-mp4"])
@pytest.mark.parametrize("spec", list(SHORTCUT_SPECS))
def test_keyframe_runs_give_the_same_arrays_as_a_full_pass(long_mpeg4: dict[str, Path], source: str, spec: str) -> None:
    path, spec = long_mpeg4[source], ClipSpec(**SHORTCUT_SPECS[spec])
    scan = scan_mpeg4_packets(path)
    assert scan.exact and scan.count == 120
    assert scan.keyframes == tuple(range(0, 120, 12))
    assert (scan.offsets is not None) == (path.suffix == ".avi")  # AVI files are read without OpenCV's demuxer
    fast = decode_clips(path, spec)
    assert fast.method == "keyframe"
    assert_same_as_sequential(fast, path, spec)
    assert_exact(fast, 120)


def test_a_rotated_mpeg4_stream_outside_avi_is_turned_upright(long_mpeg4: dict[str, Path], video_dir: Path) -> None:
    """The keyframe runs are decoded from an AVI copy, which has no display rotation: such a stream is decoded
    sequentially, so its clips are turned as a player shows them, like every other rotated video."""
    rotated = video_dir / "rotated-mpeg4.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(long_mpeg4["opencv-mp4v-in-mp4"]), "-c", "copy", str(rotated))
    upright = decode_clips(long_mpeg4["opencv-mp4v-in-mp4"], ClipSpec(frames=6, height=HEIGHT, width=WIDTH))
    turned = decode_clips(rotated, ClipSpec(frames=6, height=WIDTH, width=HEIGHT))
    assert upright.method == "keyframe" and turned.method == "sequential"
    for original, shown in zip(upright.clips[0], turned.clips[0]):
        assert np.array_equal(np.rot90(original, 1), shown)


def test_an_avi_the_direct_reader_declines_is_demuxed_once_through_opencv(
    long_mpeg4: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def decline(data):
        calls.append(len(data))
        raise AviFormatError("as if the file had a layout the reader does not list exactly")

    monkeypatch.setattr(video, "read_video_packets", decline)
    path, spec = long_mpeg4["ffmpeg-mpeg4"], ClipSpec(frames=8, height=32, width=32)
    decoded = decode_clips(path, spec)
    assert len(calls) == 1  # not read directly a second time before OpenCV's demuxer takes over
    assert decoded.method == "keyframe"  # the keyframe runs still, from packets demuxed through OpenCV
    assert_same_as_sequential(decoded, path, spec)
    assert_exact(decoded, 120)


def test_b_frames_fall_back_to_a_sequential_pass(video_dir: Path) -> None:
    frames = [index_frame(i, HEIGHT, WIDTH) for i in range(60)]
    path = write_frames(video_dir / "bframes.avi", frames, codec="mpeg4", gop=12, extra_args=["-bf", "2"])
    assert not scan_mpeg4_packets(path).exact
    decoded = decode_clips(path, ClipSpec(frames=6, height=32, width=32))
    assert decoded.method.startswith("sequential")
    assert_exact(decoded, 60)


def test_truncated_avi_uses_the_frames_that_really_decode(video_dir: Path) -> None:
    whole = write_index_video(video_dir / "whole.avi", 60, "mjpg", height=HEIGHT, width=WIDTH).path
    cut = video_dir / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the header still claims 60 frames
    decoded = decode_clips(cut, ClipSpec(frames=6, height=32, width=32))
    assert 0 < decoded.num_frames < 60
    assert decoded.method == "sequential+recount"
    assert decoded.frame_indices.tolist() == [uniform_indices(decoded.num_frames, 6).tolist()]
    assert_exact(decoded, decoded.num_frames)


@pytest.mark.parametrize("where", ["inside a keyframe", "between two packets"])
def test_an_mpeg4_avi_cut_short_is_decoded_sequentially(long_mpeg4: dict[str, Path], video_dir: Path, where) -> None:
    """An incomplete download: the decoder conceals a keyframe cut in half with the picture decoded before it, which
    a run starting at that keyframe would not have decoded. Such a file takes the sequential pass (exact)."""
    whole = long_mpeg4["ffmpeg-mpeg4"]
    data = whole.read_bytes()
    offset, size = read_video_packets(data).packets[96].tolist()  # an I-frame: a keyframe every 12 frames
    cut = video_dir / f"cut-{where.replace(' ', '-')}.avi"
    cut.write_bytes(data[: offset + size // 2] if where == "inside a keyframe" else data[: offset - 8])
    spec = ClipSpec(frames=8, height=32, width=32)
    decoded = decode_clips(cut, spec)
    assert decoded.method.startswith("sequential")
    assert decoded.num_frames == (97 if where == "inside a keyframe" else 96)
    assert_same_as_sequential(decoded, cut, spec)
    assert decode_clip(decoded.clips[0])[:-1] == decoded.frame_indices[0].tolist()[:-1]  # the last may be concealed


def test_raw_stream_without_a_frame_count(codec_videos: dict[str, Path], video_dir: Path) -> None:
    path = video_dir / "raw.m1v"
    ffmpeg(
        "-i", str(codec_videos["h264-long-gop-mp4"]), "-c:v", "mpeg1video", "-q:v", "2", "-f", "mpeg1video", str(path)
    )
    assert_exact(decode_clips(path, ClipSpec(frames=6, height=32, width=32)), FRAMES)


@pytest.mark.parametrize("estimate", [None, FRAMES - 9, FRAMES - 1, FRAMES + 1, 3 * FRAMES])
def test_wrong_frame_count_estimates_still_give_exact_clips(
    codec_videos: dict[str, Path], estimate: int | None
) -> None:
    spec = ClipSpec(frames=5, height=32, width=32)
    decoded = _decode_sequential(codec_videos["h264-long-gop-mp4"], spec, estimate)
    assert decoded.frame_indices.tolist() == [uniform_indices(FRAMES, 5).tolist()]
    assert_exact(decoded, FRAMES)


def test_read_frames_keeps_only_the_wanted_frames(codec_videos: dict[str, Path]) -> None:
    frames, count = read_frames(codec_videos["mjpg-avi"], ClipSpec(frames=2, height=16, width=16), {3, 30})
    assert count == FRAMES
    assert sorted(frames) == [3, 30]
    assert frames[3].shape == (16, 16, 3)


def test_display_rotation_is_applied(codec_videos: dict[str, Path], video_dir: Path) -> None:
    rotated = video_dir / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(codec_videos["h264-long-gop-mp4"]), "-c", "copy", str(rotated))
    upright = decode_clips(codec_videos["h264-long-gop-mp4"], ClipSpec(frames=4, height=HEIGHT, width=WIDTH))
    turned = decode_clips(rotated, ClipSpec(frames=4, height=WIDTH, width=HEIGHT))
    for original, shown in zip(upright.clips[0], turned.clips[0]):
        assert np.array_equal(np.rot90(original, 1), shown)  # 90 degrees counter-clockwise, as a player shows it


@pytest.fixture(scope="module")
def bad_files(video_dir: Path, codec_videos: dict[str, Path]) -> dict[str, Path]:
    bad = video_dir / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "text.mp4").write_text("this is not a video\n")
    mp4 = codec_videos["h264-long-gop-mp4"].read_bytes()
    (bad / "truncated.mp4").write_bytes(mp4[: len(mp4) // 3])  # the index (moov) sits at the end
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(bad / "audio-only.mp4"))
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=size=64x48:duration=1",
        "-frames:v",
        "0",
        "-c:v",
        "mjpeg",
        str(bad / "zero-frames.avi"),
    )
    return {path.stem: path for path in bad.iterdir()} | {"missing": bad / "missing.mp4"}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file"),
        ("text", "cannot open"),
        ("truncated", "cannot open"),
        ("audio-only", "no video stream"),
        ("zero-frames", "no frame decodes"),
        ("missing", "no such file"),
    ],
)
def test_bad_files_raise_a_one_line_reason(bad_files: dict[str, Path], name: str, reason: str) -> None:
    with pytest.raises(VideoDecodeError, match=reason) as info:
        decode_clips(bad_files[name], ClipSpec())
    assert "\n" not in str(info.value)
    assert str(bad_files[name]) in str(info.value)


def test_avi_writer_round_trip(codec_videos: dict[str, Path], video_dir: Path) -> None:
    """Packets copied into a new AVI decode to the same frames (MJPEG: every packet a JPEG)."""
    with open_capture(codec_videos["mjpg-avi"], raw=True) as capture:
        packets = [_packet_bytes(capture) for _ in iter(capture.grab, False)]
    copy = video_dir / "copy.avi"
    with open(copy, "wb") as handle:
        writer = AviWriter(handle, "MJPG", WIDTH, HEIGHT)
        for packet in packets[::3]:
            writer.write(packet + b"\x00" * (len(packet) % 2 == 0))  # odd sizes exercise the chunk padding
        writer.close()
    frames, count = read_frames(copy, ClipSpec(frames=1, height=HEIGHT, width=WIDTH), range(len(packets)))
    assert count == len(packets[::3]) == 14
    assert [decode_clip(frames[i][None])[0] for i in range(count)] == list(range(0, FRAMES, 3))


def test_keyframe_path_falls_back_when_no_temporary_file_can_be_written(
    long_mpeg4: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only_disk(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(video, "_scratch", threading.local())  # no scratch file made yet in this thread
    monkeypatch.setattr("tempfile.TemporaryFile", read_only_disk)
    monkeypatch.setattr("tempfile.NamedTemporaryFile", read_only_disk)
    spec = ClipSpec(frames=8, height=32, width=32)
    decoded = decode_clips(long_mpeg4["ffmpeg-mpeg4"], spec)
    assert decoded.method == "sequential"
    assert_exact(decoded, 120)


def scratch_in_child(queue: multiprocessing.Queue) -> None:
    path = video._scratch_copy(lambda handle: handle.write(b"child"))
    queue.put(path.read_bytes())


def test_scratch_file_is_reused_cut_to_length_nameless_and_per_process(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(video, "_scratch", threading.local())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = video._scratch_copy(lambda handle: handle.write(b"x" * 5000))
    assert first.read_bytes() == b"x" * 5000
    second = video._scratch_copy(lambda handle: handle.write(b"yz"))
    assert second == first and second.read_bytes() == b"yz"  # the same file, cut to what was written
    assert list(tmp_path.iterdir()) == []  # O_TMPFILE: nothing named in the directory, nothing left behind
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=scratch_in_child, args=(queue,))
    child.start()
    assert queue.get(timeout=30) == b"child"
    child.join()
    assert first.read_bytes() == b"yz"  # a forked child wrote its own file, not the inherited one


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


@pytest.mark.parametrize("source", ["ffmpeg-mpeg4", "h264"])
def test_an_interrupt_while_a_view_of_the_mapped_file_is_alive_stays_an_interrupt(
    long_mpeg4: dict[str, Path], video_dir: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Ctrl-C (here raised by hand) inside a step that holds a numpy view of the mapped file reaches the caller as
    KeyboardInterrupt, not as mmap's BufferError about a view still alive."""

    def interrupted(data, *args):
        view = np.frombuffer(data, np.uint8)  # noqa: F841 - alive in this frame when the interrupt comes
        raise KeyboardInterrupt

    if source == "h264":
        path = write_index_video(video_dir / "interrupted.mp4", 40, "h264", height=HEIGHT, width=WIDTH).path
        monkeypatch.setattr(video, "read_h264_track", interrupted)
    else:
        path = long_mpeg4[source]
        monkeypatch.setattr(video, "vop_codes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        decode_clips(path, ClipSpec(frames=8, height=32, width=32))


def test_frozen_means_one_picture_for_several_sampled_frames() -> None:
    still = np.zeros((1, 4, 8, 8, 3), np.uint8)
    one_frame = DecodedVideo(still, np.zeros((1, 4), np.int32), 1, "sequential")
    assert not frozen(one_frame)  # a one-frame video repeats its frame: nothing to warn about
    assert frozen(DecodedVideo(still, np.array([[0, 3, 6, 9]], np.int32), 10, "sequential"))
    moving = still.copy()
    moving[0, 2, 0, 0, 0] = 1
    assert not frozen(DecodedVideo(moving, np.array([[0, 3, 6, 9]], np.int32), 10, "sequential"))


def pinned_opencv() -> str:
    """The opencv-python-headless version both images pin."""
    requirements = Path(__file__).resolve().parents[2] / "docker" / "requirements-processing.txt"
    return re.search(r"^opencv-python-headless==([\d.]+)", requirements.read_text(), re.M)[1]


@pytest.mark.skipif(
    not pinned_opencv().startswith(cv2.__version__ + "."), reason="needs the OpenCV wheel the images pin"
)
def test_the_pinned_opencv_decodes_interlaced_video(video_dir: Path) -> None:
    """FFmpeg 8 (opencv-python-headless 4.13 and later) hands back one unwritten picture for every interlaced frame;
    the pinned wheel must convert them, or camcorder and broadcast footage would train on blank clips."""
    frames = [index_frame(i, HEIGHT, WIDTH) for i in range(30)]
    path = write_frames(video_dir / "interlaced.mp4", frames, codec="h264", extra_args=["-x264-params", "interlaced=1"])
    for sampling in ("uniform", "head"):
        decoded = decode_clips(path, ClipSpec(frames=6, height=HEIGHT, width=WIDTH, sampling=sampling))
        assert not frozen(decoded)
        assert_exact(decoded, decoded.num_frames)
