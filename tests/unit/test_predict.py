"""predict and evaluate: the stored clip spec decodes videos like processing; CSV rows; bad files; model dirs."""

from __future__ import annotations

import csv
import json
import tarfile

import keras
import numpy as np
import pytest
from trainkit import write_dataset, write_model_dir
from videos import write_index_video

from video3dcnn.cli import EXIT_USER_ERROR, main
from video3dcnn.config import ClipSpec
from video3dcnn.decoding import decode_clips
from video3dcnn.errors import ConfigError, DataError
from video3dcnn.predict import csv_header, load_trained
from video3dcnn.shards import write_classes

SPEC = ClipSpec(frames=4, height=16, width=16)
CLASSES = ("Left", "Right", "Up")


def _model_dir(directory, spec: ClipSpec = SPEC, classes=CLASSES):
    return write_model_dir(directory, spec, classes)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_index_video(tmp_path_factory.mktemp("videos") / "clip.avi", 20, height=48, width=64).path


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _expected_probabilities(model_dir, video, spec=SPEC) -> np.ndarray:
    model = keras.saving.load_model(model_dir / "model.keras")
    return np.asarray(model.predict_on_batch(decode_clips(video, spec).clips)).mean(axis=0)


def test_predict_writes_ranked_rows_and_an_error_row(model_dir, video, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model-dir", str(model_dir), str(video), str(broken), "--output", str(out),
                 "--top-k", "2"]) == 0
    rows = _rows(out)
    assert list(rows[0]) == ["path", "predicted", "probability", "top2", "top2_probability", "clips", "error"]
    good, bad = rows
    expected = _expected_probabilities(model_dir, video)
    assert good["predicted"] == CLASSES[int(expected.argmax())] and good["error"] == ""
    assert float(good["probability"]) == pytest.approx(expected.max(), abs=1e-5)
    assert float(good["top2_probability"]) == pytest.approx(np.sort(expected)[-2], abs=1e-5)
    assert bad["path"] == str(broken) and bad["predicted"] == "" and bad["error"]


def test_sliding_windows_average_clip_probabilities(tmp_path, video):
    spec = ClipSpec(frames=4, height=16, width=16, sampling="sliding", clip_stride=4)
    model_dir = _model_dir(tmp_path / "sliding", spec)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model-dir", str(model_dir), str(video), "--output", str(out)]) == 0
    row = _rows(out)[0]
    assert int(row["clips"]) == len(decode_clips(video, spec).clips) > 1
    assert float(row["probability"]) == pytest.approx(_expected_probabilities(model_dir, video, spec).max(), abs=1e-5)


def test_directories_are_searched_recursively(model_dir, tmp_path, capsys):
    for name in ("a/one.avi", "b/c/two.avi"):
        write_index_video(tmp_path / "in" / name, 8, height=32, width=32)
    (tmp_path / "in" / "notes.txt").write_text("not a video")
    assert main(["predict", "--model-dir", str(model_dir), str(tmp_path / "in")]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [row["path"].split("/in/")[1] for row in rows] == ["a/one.avi", "b/c/two.avi"]


def test_top_k_beyond_the_class_count_is_refused(model_dir, video):
    assert main(["predict", "--model-dir", str(model_dir), str(video), "--top-k", "9"]) == EXIT_USER_ERROR


def test_header_without_top_k():
    assert csv_header(1) == ["path", "predicted", "probability", "clips", "error"]


def test_missing_model_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="has no model.keras"):
        load_trained(tmp_path)


def test_class_list_that_does_not_fit_the_model_is_refused(tmp_path):
    _model_dir(tmp_path)
    write_classes(tmp_path, ("only", "two"))
    with pytest.raises(DataError, match="predicts 3 classes but classes.txt lists 2"):
        load_trained(tmp_path)


def test_model_archive_from_s3_is_unpacked(model_dir, tmp_path):
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as archive:
        for name in ("model.keras", "classes.txt", "clip_spec.json"):
            archive.add(model_dir / name, arcname=name)
    trained = load_trained(tmp_path)
    assert trained.classes == CLASSES and trained.clip_spec == SPEC


def test_evaluate_on_shards_writes_metrics_and_plot(model_dir, tmp_path, capsys):
    write_dataset(tmp_path / "shards", classes=CLASSES, clips_per_class=3, spec=SPEC)
    out = tmp_path / "eval"
    assert main(["evaluate", "--model-dir", str(model_dir), "--data-dir", str(tmp_path / "shards"),
                 "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 9 and np.array(metrics["confusion_matrix"]).sum() == 9
    assert set(metrics["per_class"]) == set(CLASSES)
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out.startswith(f"accuracy {metrics['accuracy']:.4f} on 9 samples")


def test_evaluate_refuses_shards_of_other_classes(model_dir, tmp_path):
    write_dataset(tmp_path / "shards", classes=("x", "y", "z"), spec=SPEC)
    assert main(["evaluate", "--model-dir", str(model_dir), "--data-dir", str(tmp_path / "shards"),
                 "--output-dir", str(tmp_path / "e")]) == EXIT_USER_ERROR


def test_evaluate_on_labelled_videos(model_dir, tmp_path):
    for label in CLASSES:
        write_index_video(tmp_path / "videos" / label / f"{label}1.avi", 8, height=32, width=32)
    (tmp_path / "videos" / "Up" / "bad.avi").write_bytes(b"\x00" * 64)
    out = tmp_path / "eval"
    assert main(["evaluate", "--model-dir", str(model_dir), "--videos", str(tmp_path / "videos"),
                 "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 3 and [f["path"].endswith("bad.avi") for f in metrics["failed"]] == [True]
    assert len(_rows(out / "predictions.csv")) == 4


def _archive(directory, files: dict, name: str = "model.tar.gz"):
    """Write ``directory/model.tar.gz`` holding ``files``: arcname -> a path to add, or a TarInfo-editing callable."""
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(directory / name, "w:gz") as archive:
        for arcname, source in files.items():
            if callable(source):
                info = tarfile.TarInfo(arcname)
                source(archive, info)
            else:
                archive.add(source, arcname=arcname)
    return directory


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert all(word in line for word in words), line
    return line


def _predict(model_dir, video, *extra) -> int:
    return main(["predict", "--model-dir", str(model_dir), str(video), *extra])


def test_an_archive_made_with_tar_dash_c_is_accepted(model_dir, video, tmp_path, capsys):
    """``tar -C model -czf model.tar.gz .`` names the members ./model.keras, ./classes.txt, ..."""
    import subprocess

    target = tmp_path / "job"
    target.mkdir()
    subprocess.run(["tar", "-C", str(model_dir), "-czf", str(target / "model.tar.gz"), "."], check=True)
    assert _predict(target, video) == 0
    assert sorted(path.name for path in target.iterdir()) == ["classes.txt", "clip_spec.json", "model.keras",
                                                              "model.tar.gz"]  # fmt: skip


def test_an_archive_whose_model_keras_is_a_link_is_refused_and_nothing_unpacked(model_dir, video, tmp_path, capsys):
    def link(archive, info):
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)

    target = _archive(tmp_path / "job", {"model.keras": link, "classes.txt": model_dir / "classes.txt",
                                         "clip_spec.json": model_dir / "clip_spec.json"})  # fmt: skip
    assert _predict(target, video) == EXIT_USER_ERROR
    _one_line_error(capsys, "model.tar.gz: its model.keras is a link to /etc/passwd")
    assert [path.name for path in target.iterdir()] == ["model.tar.gz"]


def test_an_archive_that_is_not_gzip_is_a_one_line_error(video, tmp_path, capsys):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "model.tar.gz").write_bytes(b"PK\x03\x04 a zip, not a tar.gz" * 100)
    assert _predict(tmp_path / "job", video) == EXIT_USER_ERROR
    _one_line_error(capsys, "model.tar.gz is not a gzip-compressed tar archive")


class _Zeros:
    """A file of ``size`` zero bytes, read without holding it."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


def test_an_archive_that_expands_far_beyond_its_size_is_refused_and_leaves_nothing(model_dir, video, tmp_path, capsys):
    """A 1 MB tar.gz expanded to a 1 GB model.keras, left behind; extraction is now capped (here: 300 MB of zeros in
    about 300 KB)."""
    def bomb(archive, info):
        info.size = 300 * 2**20
        archive.addfile(info, _Zeros(info.size))

    files = {name: model_dir / name for name in ("classes.txt", "clip_spec.json")}
    target = _archive(tmp_path / "job", {**files, "model.keras": bomb})
    assert (target / "model.tar.gz").stat().st_size < 2**20
    assert _predict(target, video) == EXIT_USER_ERROR
    _one_line_error(capsys, "model.tar.gz expands to more than", "nothing was unpacked")
    assert [path.name for path in target.iterdir()] == ["model.tar.gz"]


def test_an_archive_without_the_model_files_says_what_it_holds(model_dir, video, tmp_path, capsys):
    target = _archive(tmp_path / "job", {"model/model.keras": model_dir / "model.keras"})
    assert _predict(target, video) == EXIT_USER_ERROR
    _one_line_error(capsys, "lacks model.keras, classes.txt, clip_spec.json at its top level",
                    "(it holds model/model.keras)")  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({**SPEC.to_dict(), "height": 100000, "width": 100000}, ["clip_spec.json", "between 4x4 and 1024x1024"]),
        ({**SPEC.to_dict(), "frames": 5}, ["describes 5x16x16x3 clips (TxHxWxC) but model.keras takes 4x16x16x3"]),
        ({**SPEC.to_dict(), "frames": "4"}, ["clip_spec.json", "frames must be a whole number"]),
        ({"frames": 4}, ["clip_spec.json lacks height, width"]),
        ([4, 16, 16], ["clip_spec.json must hold a JSON object"]),
    ],
    ids=["huge", "frames-mismatch", "string", "incomplete", "list"],
)
def test_a_clip_spec_out_of_bounds_or_not_fitting_the_model_is_a_one_line_error(
    model_dir, video, tmp_path, capsys, spec, words
):
    target = tmp_path / "model"
    target.mkdir()
    for name in ("model.keras", "classes.txt"):
        (target / name).write_bytes((model_dir / name).read_bytes())
    (target / "clip_spec.json").write_text(json.dumps(spec))
    assert _predict(target, video) == EXIT_USER_ERROR
    _one_line_error(capsys, *words)
    assert main(["evaluate", "--model-dir", str(target), "--videos", str(video.parent),
                 "--output-dir", str(tmp_path / "e")]) == EXIT_USER_ERROR  # fmt: skip
    _one_line_error(capsys, *words)


def test_a_model_keras_that_is_not_a_model_is_a_one_line_error(model_dir, video, tmp_path, capsys):
    target = tmp_path / "model"
    target.mkdir()
    for name in ("classes.txt", "clip_spec.json"):
        (target / name).write_bytes((model_dir / name).read_bytes())
    (target / "model.keras").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    assert _predict(target, video) == EXIT_USER_ERROR
    _one_line_error(capsys, "cannot load the model", "model.keras")
    (target / "model.keras").unlink()
    (target / "model.keras").symlink_to("/dev/zero")
    assert _predict(target, video) == EXIT_USER_ERROR
    _one_line_error(capsys, "model.keras is a symbolic link to a character device (/dev/zero), not a file")


def test_every_bad_video_gets_its_own_error_row_and_predict_goes_on(model_dir, video, tmp_path, monkeypatch):
    import os

    import video3dcnn.predict as predict

    os.mkfifo(tmp_path / "pipe.mp4")
    odd = tmp_path / "odd.avi"
    odd.write_bytes(video.read_bytes())
    real = predict.video_probabilities

    def fail_on_odd(trained, path, batch_size=32):
        if path == odd:
            raise RuntimeError("a decoder bug\nover two lines")
        return real(trained, path, batch_size)

    monkeypatch.setattr(predict, "video_probabilities", fail_on_odd)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model-dir", str(model_dir), str(video), str(tmp_path / "pipe.mp4"), str(odd),
                 str(video), "--output", str(out)]) == 0  # fmt: skip
    rows = _rows(out)
    assert [bool(row["predicted"]) for row in rows] == [True, False, False, True]
    assert rows[1]["error"].endswith("pipe.mp4 is a named pipe (FIFO), not a video file")
    assert rows[2]["error"] == "internal error: RuntimeError: a decoder bug over two lines"
