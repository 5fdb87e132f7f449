"""Distribution glue: TF_CONFIG from the host list, chief selection, strategy choice, and a real MWMS run."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from video3dcnn import distribute
from video3dcnn.contract import Hosts
from video3dcnn.errors import ConfigError

TESTS = Path(__file__).resolve().parents[1]


def test_tf_config_lists_sorted_hosts_as_workers():
    config = distribute.tf_config(Hosts(current="algo-2", all=("algo-3", "algo-1", "algo-2")))
    assert config == {
        "cluster": {"worker": ["algo-1:8890", "algo-2:8890", "algo-3:8890"]},
        "task": {"type": "worker", "index": 1},
        "environment": "cloud",
    }


def test_unknown_current_host_is_refused():
    with pytest.raises(ConfigError, match="resourceconfig.json"):
        distribute.tf_config(Hosts(current="algo-9", all=("algo-1", "algo-2")))


@pytest.mark.parametrize(("current", "index", "chief"), [("algo-1", 0, True), ("algo-2", 1, False)])
def test_placement_first_sorted_host_is_chief(current, index, chief):
    placement = distribute.placement(Hosts(current=current, all=("algo-2", "algo-1")))
    assert (placement.worker_index, placement.num_workers, placement.is_chief) == (index, 2, chief)


def test_single_host_single_gpu_uses_no_strategy():
    environ: dict[str, str] = {}
    placement, scope = distribute.setup(Hosts("algo-1", ("algo-1",)), num_gpus=1, environ=environ)
    assert placement.strategy == "none" and placement.is_chief
    assert isinstance(scope, contextlib.nullcontext) and environ == {}


def test_multi_host_needs_the_tensorflow_backend(monkeypatch):
    monkeypatch.setattr(distribute, "backend", lambda: "jax")
    environ: dict[str, str] = {}
    with pytest.raises(ConfigError, match="KERAS_BACKEND=tensorflow"):
        distribute.setup(Hosts("algo-1", ("algo-1", "algo-2")), num_gpus=0, environ=environ)
    assert "TF_CONFIG" not in environ


def test_multi_host_sets_tf_config(monkeypatch):
    monkeypatch.setattr(distribute, "_tf_strategy_scope", lambda multi_worker: contextlib.nullcontext(multi_worker))
    environ: dict[str, str] = {}
    placement, scope = distribute.setup(Hosts("algo-2", ("algo-1", "algo-2")), num_gpus=0, environ=environ)
    assert placement.strategy == "multi_worker_mirrored" and not placement.is_chief
    assert json.loads(environ["TF_CONFIG"])["task"] == {"type": "worker", "index": 1}
    with scope as multi_worker:
        assert multi_worker is True


MWMS_SCRIPT = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
os.environ["TF_CONFIG"] = json.dumps({{"cluster": {{"worker": ["localhost:0"]}}, "task": {{"type": "worker", "index": 0}}}})
import trainkit
from video3dcnn import distribute
from video3dcnn.hyperparameters import TrainConfig
from video3dcnn.training import TrainPaths, train
root = Path({root!r})
index = trainkit.write_dataset(root / "data", clips_per_class=6)
scope = distribute._tf_strategy_scope(multi_worker=True)
result = train(TrainConfig(epochs=2, batch_size=4), index, None, TrainPaths(root / "m", root / "o", root / "c"),
               "algo-1", True, scope)
print(json.dumps(result.history["epoch"]))
"""


@pytest.mark.slow
def test_training_runs_under_multi_worker_mirrored_strategy(tmp_path):
    """Keras 3, the PyDataset loader and checkpoints under the strategy multi-host jobs use (one worker here)."""
    script = MWMS_SCRIPT.format(tests=str(TESTS), root=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [1, 2]
    assert (tmp_path / "m" / "model.keras").is_file()
    assert (tmp_path / "c" / "checkpoint-algo-1-epoch0002.keras").is_file()
