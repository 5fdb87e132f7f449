"""predict and evaluate: the stored clip spec decodes videos like processing; CSV rows; bad files; model dirs."""

from __future__ import annotations

import csv
import json
import tarfile

import keras
import numpy as np
import pytest
from trainkit import write_dataset
from videos import write_index_video

from video3dcnn.checkpoints import save_model
from video3dcnn.cli import EXIT_USER_ERROR, main
from video3dcnn.config import ClipSpec
from video3dcnn.errors import ConfigError, DataError
from video3dcnn.model import build_model
from video3dcnn.predict import csv_header, load_trained
from video3dcnn.files import write_json_atomic
from video3dcnn.shards import write_classes
from video3dcnn.video import decode_clips

SPEC = ClipSpec(frames=4, height=16, width=16)
CLASSES = ("Left", "Right", "Up")


def _model_dir(directory, spec: ClipSpec = SPEC, classes=CLASSES):
    keras.utils.set_random_seed(0)
    model = build_model(spec.shape, len(classes), "bn")
    save_model(model, directory / "model.keras")
    write_classes(directory, classes)
    write_json_atomic(directory / "clip_spec.json", spec.to_dict())
    return directory


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
