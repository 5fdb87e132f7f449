"""process -> train -> predict -> evaluate through the ``video3dcnn`` command, on generated videos."""

from __future__ import annotations

import csv
import json

import pytest

from video3dcnn.cli import main

pytestmark = pytest.mark.slow


def test_videos_to_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "no-job"))
    videos, shards, model, out = (tmp_path / name for name in ("videos", "shards", "model", "output"))
    assert main(["sample", str(videos), "--groups", "3", "--clips-per-group", "2", "--frames", "16",
                 "--size", "32x32"]) == 0
    assert main(["process", "--input", str(videos), "--output", str(shards), "--workers", "1", "--frames", "8",
                 "--size", "16x16", "--val-fraction", "0.5"]) == 0
    assert main(["train", "--data-dir", str(shards), "--model-dir", str(model), "--output-data-dir", str(out),
                 "--epochs", "2", "--batch-size", "8", "--workers", "2"]) == 0
    classes = (model / "classes.txt").read_text().split()
    assert classes == ["MoveDown", "MoveLeft", "MoveRight", "MoveUp"]
    assert json.loads((model / "clip_spec.json").read_text())["frames"] == 8

    predictions = tmp_path / "predictions.csv"
    assert main(["predict", "--model-dir", str(model), str(videos), "--output", str(predictions), "--top-k", "2"]) == 0
    rows = list(csv.DictReader(predictions.open()))
    assert len(rows) == 24 and all(row["predicted"] in classes and row["error"] == "" for row in rows)
    assert all(0.25 <= float(row["probability"]) <= 1.0 for row in rows)

    assert main(["evaluate", "--model-dir", str(model), "--data-dir", str(shards), "--split", "validation",
                 "--output-dir", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    trained = json.loads((out / "metrics.json").read_text())
    assert report["count"] == trained["validation"]["count"]
    assert report["accuracy"] == pytest.approx(trained["validation"]["accuracy"])
