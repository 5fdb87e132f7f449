"""The real sagemaker-training ``train`` command on a temporary /opt/ml tree (``SAGEMAKER_BASE_DIR``).

This is the training image's contract without Docker: the toolkit reads the config files, runs
``/opt/ml/code/train.py`` (our shim) with the hyperparameters as ``--key value`` arguments, and writes
``output/success``, or keeps the ``output/failure`` our command wrote. It runs as a subprocess because importing
``sagemaker_training`` creates directories under ``~`` when no /opt/ml exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from trainkit import write_dataset

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "docker" / "training" / "train.py"
TOOLKIT_TRAIN = Path(sys.executable).parent / "train"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TOOLKIT_TRAIN.exists(), reason="sagemaker-training is not installed in this environment"),
]


def _opt_ml(root: Path, hyperparameters: dict[str, str]) -> Path:
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {"TrainingInputMode": "File"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "localhost", "hosts": ["localhost"]}))
    write_dataset(root / "input" / "data" / "training", classes=("a", "b", "c"), clips_per_class=4)
    (root / "code").mkdir()
    shutil.copy(SHIM, root / "code" / "train.py")
    return root


def _run_train(root: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SM_", "SAGEMAKER_"))}
    env.update(SAGEMAKER_BASE_DIR=str(root), SAGEMAKER_PROGRAM="train.py", PATH=f"{TOOLKIT_TRAIN.parent}:{env['PATH']}",
               HOME=str(root.parent))
    result = subprocess.run([str(TOOLKIT_TRAIN)], cwd=root.parent, env=env, capture_output=True, text=True,
                            timeout=600)
    print(result.stdout[-4000:], result.stderr[-4000:])
    return result


def test_toolkit_runs_the_shim_and_the_job_succeeds(tmp_path):
    root = _opt_ml(tmp_path / "opt_ml", {
        "epochs": "2", "batch_size": "4", "augment": "false", "optimizer": '"adam"', "workers": "0",
        "sagemaker_program": '"train.py"',
    })
    result = _run_train(root)
    assert result.returncode == 0
    assert (root / "output" / "success").exists() and not (root / "output" / "failure").exists()
    assert sorted(p.name for p in (root / "model").iterdir()) == ["classes.txt", "clip_spec.json", "model.keras"]
    data = sorted(p.name for p in (root / "output" / "data").iterdir())
    assert data == ["confusion_matrix.png", "history.csv", "metrics.json", "training_curves.png"]
    assert json.loads((root / "output" / "data" / "metrics.json").read_text())["hyperparameters"]["augment"] is False
    logs = result.stdout + result.stderr
    assert "epoch=2 loss=" in logs and "val_accuracy=" in logs
    assert list((root / "checkpoints").glob("checkpoint-localhost-epoch0002.keras"))


def test_a_bad_hyperparameter_leaves_our_one_line_reason(tmp_path):
    root = _opt_ml(tmp_path / "opt_ml", {"epochs": '"zero"'})
    result = _run_train(root)
    assert result.returncode != 0
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("invalid value 'zero' for 'epochs'") and failure.count("\n") == 1
    assert not (root / "output" / "success").exists()
    assert "Traceback" not in result.stderr
