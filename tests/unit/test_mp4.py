"""H.264 in MP4 without its unneeded non-reference frames: sample table, rewritten file, exact clips, refusals."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from videos import SHORTCUT_SPECS, assert_same_as_sequential, decode_clip, ffmpeg_exe, index_frame, write_frames

from video3dcnn.config import ClipSpec
from video3dcnn.errors import VideoDecodeError
from video3dcnn.mp4 import Mp4FormatError, read_h264_track, write_samples
from video3dcnn.video import decode_clips, read_frames

HEIGHT, WIDTH = 48, 64
FRAMES = 60
X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast"]

# name -> (suffix, ffmpeg output options); every one keeps B-frames that nothing refers to.
ENCODES = {
    "x264-default": (".mp4", []),
    "x264-no-pyramid": (".mp4", ["-x264-params", "b-pyramid=none:bframes=3"]),
    "x264-strict-pyramid-mov": (".mov", ["-x264-params", "b-pyramid=strict:bframes=5"]),
    "x264-avc3-with-audio": (".mp4", ["-tag:v", "avc3", "-f", "lavfi", "-i", "sine", "-shortest"]),
    "x264-rotated": (".mp4", ["-metadata:s:v", "rotate=90"]),
    "x264-faststart-slices": (".mp4", ["-movflags", "+faststart", "-x264-params", "slices=3"]),  # moov first
    "x264-open-gop": (".m4v", ["-x264-params", "open-gop=1:keyint=16:min-keyint=16"]),  # B-frames lead keyframes
}


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def encode(path: Path, options: list[str], frames: int = FRAMES) -> Path:
    """H.264 index video; ``options`` may add inputs after the frames (they are then mapped in order)."""
    raw = path.with_suffix(".yuv-source.mkv")
    write_frames(raw, [index_frame(i, HEIGHT, WIDTH) for i in range(frames)], codec="mjpeg")
    inputs, outputs = [], []
    rest = list(options)
    while "-i" in rest:  # an extra input: move it (and its -f) before the outputs
        at = rest.index("-i")
        start = at - 2 if at >= 2 and rest[at - 2] == "-f" else at
        inputs += rest[start : at + 2]
        del rest[start : at + 2]
    maps = ["-map", "0:v", "-map", "1:a"] if inputs else []
    gop = [] if "keyint" in " ".join(rest) else ["-g", "250"]
    ffmpeg("-i", str(raw), *inputs, *maps, *X264, *gop, *rest, str(path))
    return path


@pytest.fixture(scope="module")
def encodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("mp4")
    return {name: encode(directory / f"{name}{suffix}", options) for name, (suffix, options) in ENCODES.items()}


def reference_frame_count(path: Path) -> int:
    """Frames ffmpeg decodes when told to skip every non-reference frame (an independent count)."""
    result = subprocess.run(
        [ffmpeg_exe(), "-skip_frame", "noref", "-i", str(path), "-map", "0:v", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(re.findall(r"frame=\s*(\d+)", result.stderr)[-1])


@pytest.mark.parametrize("name", list(ENCODES))
def test_sample_table_describes_the_track(encodes: dict[str, Path], name: str) -> None:
    data = encodes[name].read_bytes()
    video = read_h264_track(data)
    assert len(video.sizes) == FRAMES
    assert sorted(video.display_order()) == list(range(FRAMES))
    assert video.display_order() != list(range(FRAMES))  # B-frames: decoding order differs from display order
    assert video.sync is not None and video.sync[0] == 0
    disposable = video.disposable(data)
    assert FRAMES - sum(disposable) == reference_frame_count(encodes[name])
    assert not any(disposable[i] for i in video.sync)


@pytest.mark.parametrize("name", list(ENCODES))
@pytest.mark.parametrize("spec", list(SHORTCUT_SPECS))
def test_clips_without_non_reference_frames_equal_a_full_pass(encodes: dict[str, Path], name: str, spec: str) -> None:
    path, spec = encodes[name], ClipSpec(**SHORTCUT_SPECS[spec])
    fast = decode_clips(path, spec)
    assert fast.method == "reference"
    assert_same_as_sequential(fast, path, spec)
    assert fast.num_frames == FRAMES
    for clip, indices in zip(fast.clips, fast.frame_indices):
        if name != "x264-rotated":  # a rotated index frame no longer reads as its index
            assert decode_clip(clip) == indices.tolist()


def test_rotation_survives_the_rewrite(encodes: dict[str, Path]) -> None:
    decoded = decode_clips(encodes["x264-rotated"], ClipSpec(frames=4, height=64, width=48))
    assert decoded.method == "reference"
    upright = np.rot90(decoded.clips[0, 0], k=1)  # undo a quarter turn clockwise
    assert decode_clip(upright[None]) == [0]


@pytest.mark.parametrize("version", [1, 0])
def test_negative_composition_offsets_are_read_as_signed_in_either_box_version(tmp_path: Path, version: int) -> None:
    """Negative offsets without an edit list; QuickTime-style writers put them in a version-0 box (FFmpeg reads them
    as signed whatever the version): read as unsigned they crashed the rewrite with a struct.error."""
    whole = encode(tmp_path / "whole.mp4", [])
    path = tmp_path / f"negative-v{version}.mp4"
    ffmpeg("-i", str(whole), "-c", "copy", "-movflags", "+negative_cts_offsets", "-use_editlist", "0", str(path))
    data = bytearray(path.read_bytes())
    at = data.index(b"ctts") + 4
    assert data[at] == 1  # ffmpeg writes version 1 for negative offsets
    data[at] = version
    path.write_bytes(data)
    video = read_h264_track(bytes(data))
    assert min(c - d for c, d in zip(video.composition_times, video.decode_times)) < 0
    spec = ClipSpec(frames=8, height=32, width=32)
    fast = decode_clips(path, spec)
    assert fast.method == "reference"
    assert_same_as_sequential(fast, path, spec)
    assert decode_clip(fast.clips[0]) == fast.frame_indices[0].tolist()


def test_rewritten_file_holds_the_kept_samples_with_their_times(encodes: dict[str, Path]) -> None:
    data = encodes["x264-default"].read_bytes()
    video = read_h264_track(data)
    keep = [i for i, disposable in enumerate(video.disposable(data)) if not disposable]
    target = io.BytesIO()
    write_samples(video, data, keep, target)
    copy = read_h264_track(target.getvalue())
    assert [bytes(target.getvalue()[o : o + s]) for o, s in zip(copy.offsets, copy.sizes)] == [
        data[video.offsets[i] : video.offsets[i] + video.sizes[i]] for i in keep
    ]
    assert copy.composition_times == [video.composition_times[i] for i in keep]
    assert copy.decode_times == [video.decode_times[i] for i in keep]
    assert copy.sync == [keep.index(i) for i in video.sync]


@pytest.mark.parametrize(
    ("name", "options", "reason"),
    [
        ("no-b-frames", ["-bf", "0"], None),  # nothing to drop: decoded sequentially
        ("fragmented", ["-movflags", "frag_keyframe+empty_moov"], "fragmented"),
        ("mpeg4-part2", ["-c:v", "mpeg4"], "not an H.264 track"),
    ],
)
def test_other_files_are_decoded_sequentially(tmp_path: Path, name: str, options: list[str], reason: str) -> None:
    path = encode(tmp_path / f"{name}.mp4", options)
    if reason:
        with pytest.raises(Mp4FormatError, match=reason):
            read_h264_track(path.read_bytes())
    decoded = decode_clips(path, ClipSpec(frames=8, height=32, width=32))
    assert decoded.method.startswith("sequential")
    assert decode_clip(decoded.clips[0]) == decoded.frame_indices[0].tolist()
    assert decoded.num_frames == FRAMES


def test_an_edit_list_that_hides_frames_is_declined(tmp_path: Path) -> None:
    whole = encode(tmp_path / "whole.mp4", [])
    trimmed = tmp_path / "trimmed.mp4"
    ffmpeg("-ss", "0.5", "-i", str(whole), "-c", "copy", str(trimmed))  # starts between keyframes: an edit list
    with pytest.raises(Mp4FormatError, match="edit list"):
        read_h264_track(trimmed.read_bytes())
    decoded = decode_clips(trimmed, ClipSpec(frames=8, height=32, width=32))
    assert decoded.method.startswith("sequential")
    hidden = decode_clip(decoded.clips[0])[0]  # the frames before 0.5 s (25 fps) decode but are not shown
    assert hidden in (12, 13)
    assert decode_clip(decoded.clips[0]) == [i + hidden for i in decoded.frame_indices[0].tolist()]
    assert decoded.num_frames == FRAMES - hidden


def test_truncated_mp4_is_declined(encodes: dict[str, Path], tmp_path: Path) -> None:
    data = encodes["x264-default"].read_bytes()
    moov = data.index(b"moov") - 4
    cut = data[:moov] + data[moov : moov + 200]  # moov at the end, cut short
    with pytest.raises(Mp4FormatError):
        read_h264_track(cut)


@pytest.mark.parametrize("box", [b"hdlr", b"stsc", b"mvhd", b"stbl"])
def test_an_mp4_missing_a_required_box_is_skipped_with_a_reason(
    encodes: dict[str, Path], tmp_path: Path, box: bytes
) -> None:
    """A damaged file must not end the run with a traceback: it is declined here, and decoding gives a reason."""
    damaged = encodes["x264-default"].read_bytes().replace(box, b"x" + box[1:])
    with pytest.raises(Mp4FormatError, match="malformed MP4"):
        read_h264_track(damaged)
    path = tmp_path / "damaged.mp4"
    path.write_bytes(damaged)
    try:
        decoded = decode_clips(path, ClipSpec(frames=8, height=32, width=32))
    except VideoDecodeError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert decoded.method.startswith("sequential")  # FFmpeg copes with some damage the rewrite declines


def test_reading_in_order_stops_where_timestamps_go_back(tmp_path: Path) -> None:
    """The check behind the exactness of the copy: a decoder that reorders is caught by its timestamps."""
    frames = [index_frame(i, HEIGHT, WIDTH) for i in range(30)]
    path = write_frames(tmp_path / "bframes.avi", frames, codec="mpeg4", gop=12, extra_args=["-bf", "2"])
    capture = cv2.VideoCapture(str(path))  # AVI stores no timestamps: FFmpeg guesses non-monotonic ones
    stamps = [capture.get(cv2.CAP_PROP_POS_MSEC) for _ in iter(capture.grab, False)]
    capture.release()
    assert any(later <= earlier for earlier, later in zip(stamps, stamps[1:]))
    first_back = next(i for i in range(1, len(stamps)) if stamps[i] <= stamps[i - 1])
    _, count = read_frames(path, ClipSpec(frames=1, height=32, width=32), set(), rising=True)
    assert count == first_back < 30
