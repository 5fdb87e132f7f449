"""docker-compose.yml end to end: `run --rm train` runs preprocess first and returns the training exit code.

Each test uses its own project name and WORK_DIR, and the image tags of the session (PROCESSING_IMAGE and
TRAINING_IMAGE), so compose builds nothing. Works with `docker compose` (v2) and `docker-compose` (v1.29).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from containers import HOST, REPO_ROOT, SYNTHETIC_CLASSES, compose_command, write_json

pytestmark = [pytest.mark.container, pytest.mark.slow]

COMPOSE_TIMEOUT_S = 600
MIN_SAMPLE_ACCURACY = 0.8


def compose_run(processing_image: str, training_image: str, work_dir: Path, **paths: Path) -> subprocess.CompletedProcess:
    """``compose run --rm train`` with WORK_DIR (and VIDEOS_DIR / HYPERPARAMETERS when given), then ``down``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMPOSE_")}
    env.update(PROCESSING_IMAGE=processing_image, TRAINING_IMAGE=training_image, WORK_DIR=str(work_dir))
    env.update({name.upper(): str(path) for name, path in paths.items()})
    base = [*compose_command(), "--project-name", f"v3dtest{uuid.uuid4().hex[:8]}", "--file", "docker-compose.yml"]
    try:
        result = subprocess.run([*base, "run", "--rm", "train"], cwd=REPO_ROOT, env=env, capture_output=True,
                                text=True, timeout=COMPOSE_TIMEOUT_S)  # fmt: skip
    finally:
        subprocess.run([*base, "down", "--remove-orphans"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=120)
    print(f"--- compose run --rm train exited {result.returncode} ---\n{result.stdout}\n{result.stderr}")
    return result


def _tail(result: subprocess.CompletedProcess) -> str:
    return f"exit code {result.returncode}:\n{(result.stdout + result.stderr)[-6000:]}"


def test_bundled_sample_trains_to_a_model_with_the_default_settings(
    processing_image: str, training_image: str, opt_ml: Path
) -> None:
    result = compose_run(processing_image, training_image, opt_ml)
    assert result.returncode == 0, _tail(result)
    assert (opt_ml / "processed" / f"manifest-{HOST}.json").is_file()
    assert (opt_ml / "model/model.keras").is_file()
    assert (opt_ml / "model/classes.txt").read_text(encoding="utf-8").split() == SYNTHETIC_CLASSES
    assert (opt_ml / "output/success").exists()
    metrics = json.loads((opt_ml / "output/data/metrics.json").read_text(encoding="utf-8"))
    assert metrics["validation"]["accuracy"] >= MIN_SAMPLE_ACCURACY, metrics["validation"]


def test_training_failure_is_the_exit_code_and_names_the_hyperparameter(
    processing_image: str, training_image: str, opt_ml: Path, sample_videos: Path
) -> None:
    hyperparameters = write_json(opt_ml / "hyperparameters.json", {"epochs": "1", "batch_sise": "4"})
    result = compose_run(processing_image, training_image, opt_ml / "work", videos_dir=sample_videos,
                         hyperparameters=hyperparameters)  # fmt: skip
    assert result.returncode != 0, _tail(result)
    assert "batch_sise" in (opt_ml / "work/output/failure").read_text(encoding="utf-8")
    assert not (opt_ml / "work/model/model.keras").exists()


def test_training_does_not_start_when_processing_fails(
    processing_image: str, training_image: str, opt_ml: Path
) -> None:
    videos = opt_ml / "videos"
    for label in ("a", "b"):
        (videos / label).mkdir(parents=True)
        (videos / label / "broken.avi").write_bytes(b"RIFF" + bytes(1000))
    result = compose_run(processing_image, training_image, opt_ml / "work", videos_dir=videos)
    assert result.returncode != 0, _tail(result)
    assert "broken.avi" in (opt_ml / "work/processing-output/message").read_text(encoding="utf-8")
    # train never ran: had it started on the missing data, it would have written output/failure
    assert not any((opt_ml / "work/output" / name).exists() for name in ("success", "failure"))
