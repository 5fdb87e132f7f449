"""Processing end to end in-process: shards and manifest, determinism across workers, split, atomicity, bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from videos import decode_clip, write_index_video

from video3dcnn.cli import main as cli_main
from video3dcnn.decoding import DecodedVideo
from video3dcnn.discovery import is_validation
from video3dcnn.errors import DataError, OutputError
from video3dcnn.files import atomic_path
from video3dcnn.process_options import ProcessOptions
from video3dcnn.processing import ShardWriter, process
from video3dcnn.shards import SCHEMA_VERSION, SHARD_KEYS, deflate_clip, load_index, read_classes, read_shard

CLASSES = ("Jump", "Run", "Sit")
DATA_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "data-format.md"


def make_dataset(root: Path, groups: int = 3, clips: int = 2, frames: int = 20) -> list[str]:
    """UCF101-style class folders of index videos; returns their relative paths."""
    relpaths = []
    for label in CLASSES:
        for group in range(1, groups + 1):
            for clip in range(1, clips + 1):
                relpath = f"{label}/v_{label}_g{group:02d}_c{clip:02d}.avi"
                write_index_video(root / relpath, frames + group + clip, "mjpg", height=48, width=64)
                relpaths.append(relpath)
    return relpaths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    make_dataset(root)
    (root / "Run" / "broken.avi").write_text("not a video")
    return root


def options(**overrides) -> ProcessOptions:
    values = {"frames": 4, "size": "24x32", "workers": 1, "shard_size": 5, "max_bad_fraction": 0.2} | overrides
    return ProcessOptions(**values)


def shard_arrays(directory: Path) -> dict[str, np.ndarray]:
    """Every shard of ``directory`` concatenated, in manifest order."""
    index = load_index(directory)
    shards = [read_shard(info.path) for info in index.shards]
    return {
        key: np.concatenate([getattr(shard, key) for shard in shards])
        for key in ("clips", "labels", "groups", "is_val", "paths", "frame_indices")
    }


def test_process_writes_exact_clips_shards_manifest_classes_and_preview(dataset: Path, tmp_path: Path) -> None:
    result = process(dataset, tmp_path, options(), host="algo-1")
    index = load_index(tmp_path)
    assert index.classes == CLASSES
    assert index.clip_spec.shape == (4, 24, 32, 3)
    arrays = shard_arrays(tmp_path)
    assert len(arrays["clips"]) == 18 == index.num_train + index.num_validation
    assert arrays["clips"].dtype == np.uint8 and arrays["clips"].shape[1:] == (4, 24, 32, 3)
    for clip, indices, path, label in zip(arrays["clips"], arrays["frame_indices"], arrays["paths"], arrays["labels"]):
        assert decode_clip(clip) == indices.tolist()  # the stored clip shows exactly the frames it claims
        assert CLASSES[label] == path.split("/")[0]
    manifest = result.manifest
    assert json.loads((tmp_path / "manifest-algo-1.json").read_text()) == manifest
    assert manifest["package_version"] and manifest["host"] == "algo-1" and manifest["label_source"] == "folder"
    assert manifest["skipped"] == [{"path": "Run/broken.avi", "reason": manifest["skipped"][0]["reason"]}]
    assert "cannot open" in manifest["skipped"][0]["reason"]
    counts = manifest["counts"]
    assert counts["videos"] == {"attempted": 19, "decoded": 18, "bad": 1, "skipped": 1}
    per_class = {
        name: counts["clips_per_class"]["train"][name] + counts["clips_per_class"]["validation"][name]
        for name in CLASSES
    }
    assert per_class == {name: 6 for name in CLASSES}
    assert [entry["clips"] for entry in manifest["shards"]] == [5, 5, 5, 3]
    assert read_classes(tmp_path / "classes.txt") == list(CLASSES)
    preview = cv2.imread(str(tmp_path / "preview.png"))
    assert preview is not None and preview.shape[0] > 3 * 24


def test_output_is_identical_whatever_the_number_of_workers(dataset: Path, tmp_path: Path) -> None:
    process(dataset, tmp_path / "one", options(workers=1), host="h")
    process(dataset, tmp_path / "two", options(workers=2), host="h")
    one, two = shard_arrays(tmp_path / "one"), shard_arrays(tmp_path / "two")
    for key in one:
        assert np.array_equal(one[key], two[key]), key
    assert sorted(p.name for p in (tmp_path / "one").glob("*.npz")) == sorted(
        p.name for p in (tmp_path / "two").glob("*.npz")
    )


def test_groups_never_straddle_the_split(tmp_path: Path) -> None:
    make_dataset(tmp_path / "in", groups=6, clips=3, frames=8)
    process(tmp_path / "in", tmp_path / "out", options(val_fraction=0.5, frames=2), host="h")
    arrays = shard_arrays(tmp_path / "out")
    sides: dict[str, set[bool]] = {}
    for group, is_val in zip(arrays["groups"], arrays["is_val"]):
        sides.setdefault(str(group), set()).add(bool(is_val))
    assert len(sides) == 18 and all(len(side) == 1 for side in sides.values())
    assert {group for group, side in sides.items() if True in side} == {g for g in sides if is_validation(g, 0.5)}
    assert 0 < arrays["is_val"].sum() < len(arrays["is_val"])


def test_every_class_with_two_groups_gets_a_validation_group(tmp_path: Path) -> None:
    # 5 groups per class and a fraction of 0.2: the hash alone puts none of Jump's groups in validation
    make_dataset(tmp_path / "in", groups=5, clips=1, frames=8)
    process(tmp_path / "in", tmp_path / "out", options(val_fraction=0.2, frames=2), host="h")
    arrays = shard_arrays(tmp_path / "out")
    validated = {str(group).split("_")[0] for group, is_val in zip(arrays["groups"], arrays["is_val"]) if is_val}
    assert validated == set(CLASSES)
    assert arrays["is_val"].sum() < len(arrays["is_val"]) / 2


def test_a_rerun_replaces_the_previous_output(dataset: Path, tmp_path: Path) -> None:
    process(dataset, tmp_path, options(shard_size=2), host="h")
    process(dataset, tmp_path, options(shard_size=100), host="h")
    listed = {entry.path.name for entry in load_index(tmp_path).shards}
    assert listed == {"h-00000.npz"} == {path.name for path in tmp_path.glob("*.npz")}
    assert read_classes(tmp_path / "classes.txt") == list(CLASSES)  # overwritten, never appended


def test_a_run_that_dies_midway_leaves_nothing_that_looks_complete(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process(dataset, tmp_path, options(), host="h")  # a complete earlier run
    import video3dcnn.processing as processing

    real_write, calls = processing.write_shard, []

    def write_then_die(path: Path, shard, *args) -> int:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the job were stopped while writing the second shard
        return real_write(path, shard, *args)

    monkeypatch.setattr(processing, "write_shard", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        process(dataset, tmp_path, options(), host="h")
    assert not (tmp_path / "manifest-h.json").exists()  # the earlier manifest went first
    assert len(calls) == 2  # the first shard of this run had been written...
    assert list(tmp_path.glob("*.npz")) == []  # ...and went with the interruption: no manifest would list it
    with pytest.raises(DataError, match="no manifest"):
        load_index(tmp_path)


def test_an_interrupted_run_writes_no_shard_for_the_clips_it_had_queued(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import video3dcnn.processing as processing

    real_decode, calls = processing.decode_task, []

    def decode_then_stop(task):
        calls.append(task)
        if len(calls) == 6:
            raise KeyboardInterrupt  # Ctrl-C while the sixth video decodes
        return real_decode(task)

    monkeypatch.setattr(processing, "decode_task", decode_then_stop)
    with pytest.raises(KeyboardInterrupt):
        process(dataset, tmp_path, options(shard_size=100), host="h")
    assert list(tmp_path.glob("*.npz")) == []  # five videos' clips were queued: dropped, not written
    assert not (tmp_path / "manifest-h.json").exists()


def test_too_many_bad_videos_fail_without_a_manifest(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"1 of 19 videos could not be used \(5.3% > --max-bad-fraction 5.0%\).*broken.avi"
    ):
        process(dataset, tmp_path, options(max_bad_fraction=0.05), host="h")
    assert not list(tmp_path.glob("manifest-*.json"))
    assert not list(tmp_path.glob("h-*.npz"))  # the shards it had written (5 clips each) are removed too


def test_nothing_decodes(tmp_path: Path) -> None:
    for name in ("A/1.mp4", "B/2.mp4"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="none of the 2 videos could be decoded"):
        process(tmp_path / "in", tmp_path / "out", options(max_bad_fraction=1.0), host="h")


def test_instances_split_a_replicated_input_without_overlap(dataset: Path, tmp_path: Path) -> None:
    process(dataset, tmp_path, options(num_parts=2, part_index=0), host="algo-1", hosts=("algo-1", "algo-2"))
    process(dataset, tmp_path, options(num_parts=2, part_index=1), host="algo-2", hosts=("algo-1", "algo-2"))
    first = set(read_shard(tmp_path / "algo-1-00000.npz").paths)
    second = set(read_shard(tmp_path / "algo-2-00000.npz").paths)
    assert first and second and not first & second
    assert len(shard_arrays(tmp_path)["paths"]) == 18
    assert (tmp_path / "preview-algo-1.png").is_file() and (tmp_path / "preview-algo-2.png").is_file()


def test_shard_writer_keeps_a_videos_clips_together(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "h", shard_size=4)
    for k in (3, 3, 1):
        clips = np.full((k, 2, 4, 4, 3), k, np.uint8)
        pieces = [deflate_clip(clip) for clip in clips]
        writer.add(DecodedVideo(clips, np.zeros((k, 2), np.int32), 10), pieces, 0, f"g{k}", False, f"v{k}.mp4")
    writer.close()
    assert [entry["clips"] for entry in writer.entries] == [6, 1]
    assert all(entry["bytes"] == (tmp_path / entry["file"]).stat().st_size for entry in writer.entries)
    assert read_shard(tmp_path / "h-00000.npz").clips[:, 0, 0, 0, 0].tolist() == [3] * 6


def test_a_failed_shard_write_surfaces_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(path: Path, *args, **kwargs) -> int:
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr("video3dcnn.processing.write_shard", disk_full)
    writer = ShardWriter(tmp_path, "h", shard_size=1, compress=False)
    decoded = DecodedVideo(np.zeros((1, 2, 4, 4, 3), np.uint8), np.zeros((1, 2), np.int32), 10)
    writer.add(decoded, None, 0, "g", False, "v.mp4")
    with pytest.raises(OutputError, match="No space left"):  # one line for the user, not a traceback
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_options_make_the_clip_spec() -> None:
    spec = ProcessOptions(frames=8, size="112x96", gray=True, sampling="sliding", frame_step=2).clip_spec()
    assert (spec.frames, spec.height, spec.width, spec.channels, spec.clip_stride, spec.frame_step) == (
        8,
        112,
        96,
        1,
        8,
        2,
    )
    assert ProcessOptions(extensions="AVI, .mkv").extension_list() == (".avi", ".mkv")


def test_sliding_gray_clips_keep_their_video_label_group_and_indices(tmp_path: Path) -> None:
    make_dataset(tmp_path / "in", groups=2, clips=1, frames=10)  # videos of 12 and 13 frames
    process(tmp_path / "in", tmp_path / "out", options(sampling="sliding", gray=True, clip_stride=3), host="h")
    arrays = shard_arrays(tmp_path / "out")
    assert arrays["clips"].shape[1:] == (4, 24, 32, 1)
    per_video = {path: (arrays["paths"] == path).sum() for path in set(arrays["paths"])}
    assert sorted(per_video.values()) == [3] * 3 + [4] * 3  # windows 0,3,6(,9) of 4 frames
    for clip, indices, path, label, group in zip(
        *(arrays[k] for k in ("clips", "frame_indices", "paths", "labels", "groups"))
    ):
        assert decode_clip(clip) == indices.tolist() and indices[1] - indices[0] == 1
        assert CLASSES[label] == path.split("/")[0] and group == f"{CLASSES[label]}_g{path.split('_g')[1][:2]}"


def test_compress_false_stores_clips_uncompressed(tmp_path):
    import zipfile

    from video3dcnn.synthetic import write_motion_dataset

    write_motion_dataset(tmp_path / "videos", groups=2, clips_per_group=1, num_frames=8, height=32, width=32)
    for compress in (True, False):
        out = tmp_path / f"out-{compress}"
        assert cli_main(["process", "--input", str(tmp_path / "videos"), "--output", str(out), "--workers", "1",
                         "--frames", "4", "--compress", str(compress).lower(), "--preview", "false"]) == 0
        shard = next(out.glob("*.npz"))
        with zipfile.ZipFile(shard) as archive:
            method = archive.getinfo("clips.npy").compress_type
        assert method == (zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        assert json.loads(next(out.glob("manifest-*.json")).read_text())["options"]["compress"] is compress


def test_shards_mix_classes_in_a_stable_order(tmp_path):
    from video3dcnn.shards import load_index, read_shard
    from video3dcnn.synthetic import write_motion_dataset

    write_motion_dataset(tmp_path / "videos", groups=4, clips_per_group=2, num_frames=8, height=32, width=32)
    args = ["--frames", "4", "--workers", "1", "--shard-size", "8", "--preview", "false"]
    for out in ("a", "b"):
        assert cli_main(["process", "--input", str(tmp_path / "videos"), "--output", str(tmp_path / out), *args]) == 0
    first = [read_shard(s.path) for s in load_index(tmp_path / "a").shards]
    second = [read_shard(s.path) for s in load_index(tmp_path / "b").shards]
    assert [list(s.paths) for s in first] == [list(s.paths) for s in second]  # reruns agree
    paths = [p for s in first for p in s.paths]
    assert paths != sorted(paths)  # not path order: that would put one class per shard
    assert all(len(set(s.labels.tolist())) >= 2 for s in first)  # every 8-clip shard holds several classes


def test_clips_whose_frames_are_all_the_same_picture_are_kept_with_a_warning(tmp_path: Path) -> None:
    """A still video, or an interlaced one that OpenCV 5.0's FFmpeg cannot convert (every frame comes back as the same
    unwritten buffer): kept, but named in the log and under the manifest's warnings instead of passing silently."""
    from videos import index_frame, write_frames

    root = tmp_path / "in"
    write_index_video(root / "Jump" / "moving.avi", 20, "mjpg", height=48, width=64)
    write_frames(root / "Sit" / "still.avi", [index_frame(5, 48, 64)] * 20, codec="mjpg")
    interlaced = [index_frame(i, 48, 64) for i in range(20)]
    write_frames(root / "Run" / "interlaced.mp4", interlaced, codec="h264", extra_args=["-x264-params", "interlaced=1"])
    result = process(root, tmp_path / "out", options(max_bad_fraction=0.0), host="algo-1")
    warned = {item["path"] for item in result.manifest["warnings"]}
    assert "Sit/still.avi" in warned and "Jump/moving.avi" not in warned
    assert all("same picture" in item["reason"] for item in result.manifest["warnings"])
    assert result.manifest["counts"]["videos"]["decoded"] == 3  # kept: a still video is not an error
    arrays = shard_arrays(tmp_path / "out")
    clip = arrays["clips"][list(arrays["paths"]).index("Run/interlaced.mp4")]
    indices = arrays["frame_indices"][list(arrays["paths"]).index("Run/interlaced.mp4")]
    # Either this OpenCV build converts interlaced frames (the clip shows its frames), or the run says it did not.
    assert decode_clip(clip) == indices.tolist() or "Run/interlaced.mp4" in warned


def test_an_output_that_cannot_be_written_is_refused_before_decoding(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import video3dcnn.processing as processing

    decoded = []
    monkeypatch.setattr(processing, "decode_task", lambda task: decoded.append(task))
    a_file = tmp_path / "out.txt"
    a_file.write_text("not a directory")
    with pytest.raises(OutputError, match="is a file"):
        process(dataset, a_file, options(), host="h")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(processing.tempfile, "TemporaryFile", read_only)
    with pytest.raises(OutputError, match="Permission denied"):
        process(dataset, tmp_path / "out", options(), host="h")
    assert decoded == []  # refused before the first video


def test_a_full_disk_at_the_end_leaves_no_shard_and_no_manifest(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import video3dcnn.processing as processing

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(processing, "write_preview", disk_full)
    with pytest.raises(OutputError, match="No space left on device"):
        process(dataset, tmp_path, options(), host="h")
    assert list(tmp_path.glob("*.npz")) == [] and not (tmp_path / "manifest-h.json").exists()


def test_a_rerun_without_preview_removes_the_earlier_preview(dataset: Path, tmp_path: Path) -> None:
    process(dataset, tmp_path, options(), host="h")
    assert (tmp_path / "preview.png").exists()
    process(dataset, tmp_path, options(preview=False), host="h")
    assert not (tmp_path / "preview.png").exists()  # a preview of other data must not stay beside this run's


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_reason(tmp_path: Path) -> None:
    """OpenCV crashes the process on such a name (a surrogate-escaped str): it is refused before OpenCV sees it."""
    import os

    root = tmp_path / "in"
    for label in ("Jump", "Sit"):
        write_index_video(root / label / "ok.avi", 12, "mjpg", height=48, width=64)
    try:
        with open(os.path.join(os.fsencode(root / "Jump"), b"caf\xe9.avi"), "wb") as handle:
            handle.write((root / "Jump" / "ok.avi").read_bytes())
    except OSError as exc:
        pytest.skip(f"this file system refuses names that are not UTF-8: {exc}")
    result = process(root, tmp_path / "out", options(max_bad_fraction=0.5), host="h")
    assert result.manifest["counts"]["videos"]["decoded"] == 2
    assert [item["reason"].split(": ", 1)[1] for item in result.manifest["skipped"]] == [
        "the file name is not valid UTF-8; rename the file"
    ]


def test_a_rerun_removes_the_temporary_files_a_killed_run_left(dataset: Path, tmp_path: Path) -> None:
    for name in (".h-00003.npz.k1ll3d00.tmp", ".manifest-h.json.k1ll3d01.tmp", ".other-00001.npz.k1ll3d02.tmp"):
        (tmp_path / name).write_bytes(b"half written")  # as atomic_path names them: .<final name>.<random>.tmp
    process(dataset, tmp_path, options(), host="h")
    assert sorted(path.name for path in tmp_path.glob(".*.tmp")) == [".other-00001.npz.k1ll3d02.tmp"]  # not ours


def test_the_fork_server_starts_with_ctrl_c_ignored(tmp_path: Path) -> None:
    """It ignores SIGINT itself only after importing its preload: a Ctrl-C before then printed its traceback."""
    import subprocess
    import sys

    probe = (
        "from multiprocessing import forkserver\n"
        "from video3dcnn.processing import _pool_context\n"
        "_pool_context()\n"
        "pid = forkserver._forkserver._forkserver_pid\n"
        "status = open(f'/proc/{pid}/status').read()\n"
        "print(next(line for line in status.splitlines() if line.startswith('SigIgn:')).split()[1])\n"
    )
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    ignored = int(result.stdout.strip(), 16)
    assert ignored & (1 << (2 - 1))  # SIGINT is signal 2: bit 1 of the mask


def _table(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the rows of the table under ``### heading``."""
    section = markdown.split(f"### {heading}\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()[2:]]


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_docs_data_format_describes_what_process_writes(dataset: Path, tmp_path: Path) -> None:
    """docs/data-format.md is a public interface: its tables list exactly the shard members and manifest keys a run
    writes, with their dtypes, and its reader example runs on a real output."""
    text = DATA_FORMAT.read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# The processed-data format (schema version {SCHEMA_VERSION})"
    result = process(dataset, tmp_path / "processed", options(sampling="sliding"), host="algo-1")
    members = _table(text, "Shard members")
    assert [name for row in members for name in _names(row[0])] == list(SHARD_KEYS)
    shard = read_shard(tmp_path / "processed" / result.manifest["shards"][0]["file"])
    for name, dtype, shape in ((_names(row[0])[0], row[1], row[2]) for row in members):
        array = getattr(shard, name)
        assert array.dtype.kind == "U" if dtype.startswith("unicode") else array.dtype == np.dtype(dtype.strip("`"))
        assert array.ndim == shape.count(",") + 1
    documented = [name for heading in ("Manifest keys", "Informational keys") for row in _table(text, heading)
                  for name in _names(row[0])]
    assert sorted(documented) == sorted(result.manifest)
    options_row = next(row for row in _table(text, "Informational keys") if row[0] == "`options`")
    option_names = {name for name in _names(options_row[2]) if " " not in name}  # not `video3dcnn process`
    assert {"frames", "size", "num_parts", "part_index"} <= option_names <= set(result.manifest["options"])
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    run = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, check=True)
    lines = run.stdout.splitlines()
    assert len(lines) == len(result.manifest["shards"]) and lines[0].startswith("algo-1-00000.npz (")


def test_the_preview_of_many_classes_shows_the_first_128_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """3,000 classes gave a 125 MB preview.png and a 1.8 GB peak: the preview is capped, in the log and the manifest."""
    import logging

    names = [f"class{number:03d}" for number in range(130)]
    source = write_index_video(tmp_path / "source.avi", 4, "mjpg", height=16, width=16).path
    for name in names:
        (tmp_path / "in" / name).mkdir(parents=True)
        (tmp_path / "in" / name / "a.avi").write_bytes(source.read_bytes())
    with caplog.at_level(logging.INFO, logger="video3dcnn.processing"):
        result = process(tmp_path / "in", tmp_path / "out", options(frames=2, size="16x16", shard_size=200), host="h")
    assert result.manifest["preview"] == {"file": "preview.png", "classes_shown": 128}
    assert "preview.png shows the first 128 of the 130 classes" in caplog.text
    image = cv2.imread(str(tmp_path / "out" / "preview.png"))
    row = 16 * (64 // 16)
    assert image.shape[0] == 128 * (row + 4) - 4  # 128 rows, not 130
    no_preview = process(tmp_path / "in", tmp_path / "out2", options(frames=2, size="16x16", preview=False), host="h")
    assert no_preview.manifest["preview"] is None


@pytest.mark.parametrize("other_run", ["replaces", "removes"])
def test_a_manifest_never_lists_a_shard_another_run_wrote(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other_run: str
) -> None:
    """Should a second run get past the lock (a file system without locks), the first run checks the run id of each
    shard before its manifest: the second run's shard under the same name is never listed, and never deleted."""
    import video3dcnn.processing as processing
    from video3dcnn.shards import read_run_id, write_shard

    real_decode, calls = processing.decode_task, []

    def decode_while_another_run_writes(task):
        calls.append(task)
        if len(calls) == 12:  # shard h-00000 is written by now (h-00001 waited for it)
            first = tmp_path / "h-00000.npz"
            if other_run == "replaces":
                write_shard(first, read_shard(first), run_id="0" * 32)
            else:
                first.unlink()
        return real_decode(task)

    monkeypatch.setattr(processing, "decode_task", decode_while_another_run_writes)
    with pytest.raises(OutputError, match=r"h-00000.npz was (replaced by run 0{32}|removed) while run [0-9a-f]{32}"):
        process(dataset, tmp_path, options(), host="h")
    assert not (tmp_path / "manifest-h.json").exists()
    left = sorted(path.name for path in tmp_path.glob("*.npz"))
    assert left == (["h-00000.npz"] if other_run == "replaces" else [])  # this run's shards went, the other's stayed
    if left:
        assert read_run_id(tmp_path / "h-00000.npz") == "0" * 32


def test_the_manifest_and_every_shard_it_lists_carry_the_run_id(dataset: Path, tmp_path: Path) -> None:
    from video3dcnn.shards import read_run_id

    first = process(dataset, tmp_path / "a", options(), host="h").manifest
    assert re.fullmatch(r"[0-9a-f]{32}", first["run_id"])
    assert {read_run_id(tmp_path / "a" / entry["file"]) for entry in first["shards"]} == {first["run_id"]}
    assert not list((tmp_path / "a").glob(".*.lock"))  # the lock goes with the run


def test_the_run_id_comes_from_the_inputs_so_the_same_input_gives_byte_identical_shards(
    dataset: Path, tmp_path: Path
) -> None:
    first = process(dataset, tmp_path / "a", options(), host="h").manifest
    again = process(dataset, tmp_path / "b", options(workers=2), host="h").manifest
    assert again["run_id"] == first["run_id"]
    for entry in first["shards"]:
        assert (tmp_path / "a" / entry["file"]).read_bytes() == (tmp_path / "b" / entry["file"]).read_bytes()
    other_options = process(dataset, tmp_path / "c", options(frames=5), host="h").manifest
    grown = shutil.copytree(dataset, tmp_path / "grown")
    video = sorted(grown.rglob("v_*.avi"))[0]
    video.write_bytes(video.read_bytes() + b"\0")  # the same names, one file grown
    other_input = process(grown, tmp_path / "d", options(), host="h").manifest
    assert len({first["run_id"], other_options["run_id"], other_input["run_id"]}) == 3


def test_a_video_over_the_pixel_limit_is_skipped_with_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    make_dataset(root, groups=1, clips=1)
    write_index_video(root / "Sit" / "v_Sit_g02_c01.mp4", 20, "h264", height=96, width=128)
    write_index_video(root / "Sit" / "v_Sit_g03_c01.avi", 20, "mjpg", height=96, width=128)
    limit = options(max_pixels=64 * 48, max_bad_fraction=0.5)
    manifest = process(root, tmp_path / "out", limit, host="h").manifest
    assert manifest["options"]["max_pixels"] == 64 * 48
    assert manifest["counts"]["videos"]["decoded"] == 3
    h264, mjpeg = manifest["skipped"]
    assert h264["path"] == "Sit/v_Sit_g02_c01.mp4" and mjpeg["path"] == "Sit/v_Sit_g03_c01.avi"
    assert h264["reason"].endswith(
        "frames of 128x96 pixels are over the limit of 3,072 pixels per frame (raise it with --max-pixels)"
    )
    # MJPEG tells its frame size only in a frame, which FFmpeg then refuses: the limit is named as a possible cause.
    assert mjpeg["reason"].endswith("no frame decodes (damaged or empty video stream, or frames over 3,072 pixels "
                                    "(--max-pixels))")  # fmt: skip
