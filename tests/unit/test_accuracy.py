"""Default settings learn motion direction: the synthetic classes differ only in how a square moves.

Each video's trajectory is centred on a random point, so any single frame is equally likely under every class
(``video3dcnn.synthetic``); only a model that sees time can exceed chance (0.25). The videos go through the real
``video3dcnn process`` and ``video3dcnn train`` with every hyperparameter at its default.
"""

from __future__ import annotations

import json

import pytest

from video3dcnn.cli import main
from video3dcnn.synthetic import write_motion_dataset

pytestmark = pytest.mark.slow


def test_default_training_reaches_90_percent_validation_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "no-job"))
    write_motion_dataset(tmp_path / "videos", groups=8, clips_per_group=4, num_frames=30, height=64, width=64, seed=0)
    assert main(["process", "--input", str(tmp_path / "videos"), "--output", str(tmp_path / "shards"),
                 "--workers", "1"]) == 0
    assert main(["train", "--data-dir", str(tmp_path / "shards"), "--model-dir", str(tmp_path / "model"),
                 "--output-data-dir", str(tmp_path / "output")]) == 0
    metrics = json.loads((tmp_path / "output" / "metrics.json").read_text())
    assert metrics["hyperparameters"]["arch"] == "r2plus1d" and metrics["epochs_completed"] == 60
    assert metrics["validation"]["count"] >= 16
    assert metrics["validation"]["accuracy"] >= 0.9, metrics["validation"]
