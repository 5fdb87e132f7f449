"""Distribution: placement, the watchdog's verdicts, and real multi-process jobs (two hosts, two devices).

The multi-host tests start one ``video3dcnn train`` process per host (tests/hostkit.py), each with its own /opt/ml
tree, talking through JAX's distributed runtime on 127.0.0.1: the same code path as two SageMaker instances.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest
from hostkit import start_job
from trainkit import write_dataset

from video3dcnn import checkpoints, distribute
from video3dcnn.contract import Hosts
from video3dcnn.errors import ConfigError

JOB_TIMEOUT_S = 400
HOSTS_3 = ("algo-1", "algo-2", "algo-3")


def test_a_single_host_with_one_device_needs_no_distribution():
    placement = distribute.setup(Hosts("algo-1", ("algo-1",)), num_gpus=0)
    assert placement.is_chief and placement.strategy == "none" and placement.runtime is None
    assert placement.share.replicas == 1 and placement.gather(3) == [3]


def test_unknown_current_host_is_refused():
    with pytest.raises(ConfigError, match="resourceconfig.json"):
        distribute.setup(Hosts(current="algo-9", all=("algo-1", "algo-2")), num_gpus=0)


def test_several_hosts_need_the_jax_backend(monkeypatch):
    monkeypatch.setattr(distribute, "backend", lambda: "tensorflow")
    with pytest.raises(ConfigError, match="KERAS_BACKEND=jax"):
        distribute.setup(Hosts("algo-1", ("algo-1", "algo-2")), num_gpus=0)


def _watchdog(index: int, timeout: float = 10) -> distribute.Watchdog:
    return distribute.Runtime(HOSTS_3, index, timeout, None, "algo-1:8890", 2).watchdog


@pytest.mark.parametrize(("index", "named"), [(0, "waited as the coordinator algo-1:8890 for algo-2, algo-3"),
                                              (1, "could not join the chief algo-1 at algo-1:8890 within 10 s")])
def test_a_host_gives_up_joining_after_the_timeout(index, named):
    watchdog = _watchdog(index)
    with watchdog.phase("joining"):
        now = time.monotonic()
        assert watchdog._verdict(now + 9) is None
        assert named in watchdog._verdict(now + 11)


def test_a_silent_host_is_named():
    watchdog = _watchdog(0)
    watchdog.joined()
    now = time.monotonic()
    watchdog._seen[2] = ("beacon", now - 11)  # algo-3's beacon last changed 11 s ago; algo-2's just now
    watchdog._seen[1] = ("beacon", now)
    assert watchdog._verdict(now).startswith("algo-1: lost algo-3 (stopped responding): a host stayed silent")


def test_a_worker_that_loses_the_coordinator_names_the_chief():
    watchdog = _watchdog(2)
    watchdog.joined()
    watchdog._unreachable_since = time.monotonic() - 11
    assert watchdog._verdict(time.monotonic()).startswith("algo-3: lost the chief algo-1 (JAX's coordinator)")


def test_steps_have_a_deadline_except_the_first_of_each_loop():
    watchdog = _watchdog(0)
    watchdog.joined()
    watchdog.starting("train")
    later = time.monotonic() + 60
    watchdog._seen = {i: ("beacon", later) for i in watchdog._seen}  # everybody alive
    assert watchdog._verdict(later) is None  # the first step compiles: no deadline
    watchdog.progress()
    reason = watchdog._verdict(time.monotonic() + 11)
    assert "every host still answers, but one of them is stuck: no step completed for 11 s during training" in reason
    watchdog.starting("train")  # a loop seen before compiles nothing: the deadline stays
    assert watchdog._verdict(time.monotonic() + 11) is not None
    with watchdog.phase(None):  # paused (the chief writing the model)
        assert watchdog._verdict(time.monotonic() + 100) is None


@pytest.mark.parametrize(
    "message",
    ["UNKNOWN: Gloo AllGather failed: [pair.cc:538] Read error [10.0.0.2]:5309: Connection reset by peer",
     "UNAVAILABLE: Failed to send RPC to coordination service"],
)
def test_failed_collectives_are_recognised(message):
    assert distribute.is_collective_error(ValueError(message))
    assert not distribute.is_collective_error(ValueError("could not convert string to float"))


# --- real processes -------------------------------------------------------------------------------------------------

def _dataset(root: Path):
    """24 clips in 5 shards, 18 for training and 6 for validation: both hosts get parts of shards."""
    return write_dataset(root / "data", classes=("a", "b", "c"), clips_per_class=8, shard_size=5)


def _ranges(log: str, subset: str) -> tuple[int, int, int]:
    """(first, last, total) of the ``subset`` clips a host's log says it reads."""
    found = re.search(rf"reads {subset} clips (\d+)-(\d+) of (\d+)", log)
    assert found, f"no '{subset}' range in the log:\n{log[-3000:]}"
    return int(found[1]), int(found[2]), int(found[3])


def _wait_all(runs: dict, timeout: float = JOB_TIMEOUT_S) -> dict[str, int]:
    codes = {host: run.wait(timeout) for host, run in runs.items()}
    for host, run in runs.items():
        print(f"--- {host} exited {codes[host]} ---\n{run.log[-6000:]}")
    return codes


@pytest.mark.slow
def test_two_hosts_train_one_model_each_on_its_own_clips(tmp_path):
    index = _dataset(tmp_path)
    runs = start_job(tmp_path, tmp_path / "data", {"epochs": "3", "batch_size": "4", "workers": "0"})
    assert _wait_all(runs) == {"algo-1": 0, "algo-2": 0}
    chief, worker = runs["algo-1"], runs["algo-2"]
    for subset, total in (("train", index.num_train), ("validation", index.num_validation)):
        first, second = _ranges(chief.log, subset), _ranges(worker.log, subset)
        assert first[0] == 0 and second[0] == first[1] + 1 and second[1] == total - 1  # disjoint, complete
        assert first[2] == second[2] == total
    for run in (chief, worker):
        assert "4 clips per step, 2 per host, 2 per device; 5 steps per epoch" in run.log
    assert len(re.findall(r"epoch=\d loss=", chief.log)) == 3 and "loss=" not in worker.log  # metric lines
    metrics = json.loads((chief.root / "output/data/metrics.json").read_text())
    assert metrics["validation"]["count"] == index.num_validation and metrics["train_clips"] == index.num_train
    # Keras' val_accuracy, computed by both hosts on their halves, equals the chief's report on every clip
    assert metrics["final"]["val_accuracy"] == pytest.approx(metrics["validation"]["accuracy"], abs=1e-6)
    assert (chief.root / "model/model.keras").is_file()
    assert not any(path.is_file() for path in (worker.root / "model").rglob("*"))
    assert not (worker.root / "output" / "failure").exists()
    model = keras.saving.load_model(chief.root / "model/model.keras")
    assert int(model.optimizer.iterations) == 3 * 5  # 5 steps of 4 clips per epoch (9 per host, padded to 10)


@pytest.mark.slow
@pytest.mark.parametrize(("present", "missing"), [("algo-1", "algo-2"), ("algo-2", "algo-1")])
def test_a_host_that_never_comes_up_stops_the_other_with_the_reason(tmp_path, present, missing):
    _dataset(tmp_path)
    timeout = 10
    runs = start_job(tmp_path, tmp_path / "data", {"epochs": "1", "host_timeout_seconds": str(timeout)},
                     start=[present])
    run = runs[present]
    code = run.wait(timeout + 120)
    elapsed = time.monotonic() - run.started
    print(run.log[-3000:])
    assert code == 2
    assert elapsed < timeout + 60  # the documented bound, plus interpreter and JAX start-up
    failure = run.failure
    assert missing in failure and "host_timeout_seconds" in failure and failure.count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("victim", "how", "named"),
    [("algo-2", signal.SIGKILL, "lost algo-2"), ("algo-2", signal.SIGSTOP, "lost algo-2"),
     ("algo-1", signal.SIGKILL, "lost the chief algo-1")],
    ids=["worker-killed", "worker-frozen", "chief-killed"],
)
def test_a_host_lost_mid_training_stops_the_other_with_the_reason(tmp_path, victim, how, named):
    """Killed: the survivor's collective fails at once; frozen (like a vanished machine): its beacon stops."""
    _dataset(tmp_path)
    timeout = 15
    runs = start_job(tmp_path, tmp_path / "data", {"epochs": "200", "batch_size": "4", "workers": "0",
                                                   "host_timeout_seconds": str(timeout)})
    survivor = runs["algo-1" if victim == "algo-2" else "algo-2"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while "epoch=2 " not in runs["algo-1"].log:
        assert time.monotonic() < deadline and survivor.process.poll() is None, runs["algo-1"].log[-3000:]
        time.sleep(0.5)
    os.kill(runs[victim].process.pid, how)
    lost = time.monotonic()
    try:
        code = survivor.wait(timeout + 120)
    finally:
        runs[victim].process.kill()
        runs[victim].process.wait()
    print(survivor.log[-4000:])
    assert code != 0
    assert time.monotonic() - lost < timeout + 60
    assert named in survivor.failure and survivor.failure.count("\n") == 1


def _checkpoints(run) -> list[str]:
    return sorted(path.name for path in (run.root / "checkpoints").glob("*.keras"))


@pytest.mark.slow
def test_a_resumed_two_host_job_loses_at_most_one_epoch(tmp_path):
    """Both hosts killed during epoch 3; SageMaker copies the chief's checkpoints to every host; both resume."""
    _dataset(tmp_path)
    hyperparameters = {"epochs": "4", "batch_size": "4", "workers": "0"}
    runs = start_job(tmp_path, tmp_path / "data", hyperparameters)
    chief = runs["algo-1"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while "checkpoint-algo-1-epoch0002.keras" not in _checkpoints(chief):
        assert time.monotonic() < deadline and chief.process.poll() is None, chief.log[-3000:]
        time.sleep(0.2)
    for run in runs.values():
        run.process.kill()
        run.process.wait()
    done = max(int(name[-10:-6]) for name in _checkpoints(chief))  # the newest complete checkpoint
    assert not (chief.root / "model/model.keras").exists()
    (runs["algo-2"].root / "checkpoints").mkdir(exist_ok=True)
    for name in os.listdir(chief.root / "checkpoints"):  # what SageMaker does at the restart
        shutil.copy(chief.root / "checkpoints" / name, runs["algo-2"].root / "checkpoints" / name)
    runs = start_job(tmp_path, tmp_path / "data", hyperparameters)
    assert _wait_all(runs) == {"algo-1": 0, "algo-2": 0}
    metrics = json.loads((runs["algo-1"].root / "output/data/metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == done >= 2 and metrics["epochs_completed"] == 4
    rows = list(csv.DictReader((runs["algo-1"].root / "output/data/history.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert [line.split()[0] for line in re.findall(r"epoch=\d+ loss=", runs["algo-1"].log)] == [
        f"epoch={epoch}" for epoch in range(done + 1, 5)
    ]


@pytest.mark.slow
def test_hosts_that_would_resume_from_different_epochs_are_refused(tmp_path):
    """Only the chief's /opt/ml/checkpoints holds a checkpoint (nobody copied it to algo-2): neither host trains."""
    _dataset(tmp_path)
    checkpoint = tmp_path / "algo-1" / "checkpoints" / "checkpoint-algo-1-epoch0002.keras"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")  # the hosts compare epochs before anything is loaded
    runs = start_job(tmp_path, tmp_path / "data", {"epochs": "3", "workers": "0"})
    codes = _wait_all(runs)
    assert codes["algo-1"] != 0 and codes["algo-2"] != 0
    assert "resume from different checkpoints (epoch/batch: algo-1 2/0, algo-2 0/0)" in runs["algo-1"].failure


DEVICES_SCRIPT = """
import json
from pathlib import Path
from video3dcnn import checkpoints, distribute
from video3dcnn.contract import Hosts
from video3dcnn.hyperparameters import TrainConfig
from video3dcnn.logs import configure_logging
from video3dcnn.shards import load_index
from video3dcnn.training import TrainPaths, train
configure_logging("INFO")
root = Path({root!r})
index = load_index(root / "data")
placement = distribute.setup(Hosts("algo-1", ("algo-1",)), num_gpus=None)
result = train(TrainConfig(epochs=3, batch_size=4, workers=0), index, None,
               TrainPaths(root / "m", root / "o", None), placement)
print(json.dumps({{"devices": placement.share.devices, "loss": result.history["loss"],
                  "val_accuracy": result.history["val_accuracy"]}}))
"""


def _train_on_devices(root: Path, devices: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    script = DEVICES_SCRIPT.format(root=str(root))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    print(result.stderr[-3000:])
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "log": result.stderr}


@pytest.mark.slow
def test_two_devices_on_one_host_train_one_model_on_split_batches(tmp_path):
    """Two logical CPU devices (as two GPUs would): each step's 4 clips are split 2 and 2, and the model trains
    exactly like on one device (BatchNorm statistics and the loss are over the whole batch)."""
    write_dataset(tmp_path / "data", classes=("a", "b"), clips_per_class=8)  # 12 training clips: 3 full steps
    two = _train_on_devices(tmp_path, devices=2)
    one = _train_on_devices(tmp_path, devices=1)
    assert (two["devices"], one["devices"]) == (2, 1)
    assert "DataParallel over 2 devices" in two["log"] and "4 clips per step, 4 per host, 2 per device" in two["log"]
    # Summing over two devices rounds differently, and training grows the difference: on an AMD EPYC the losses of
    # epochs 1-3 differed by 6e-5, 3e-4 and 1.7e-3 (relative). Statistics or a loss per device (2 clips) instead of
    # per batch move the first epoch's loss by about 2 % and the second's several-fold (measured with batches of 2).
    assert two["loss"][0] == pytest.approx(one["loss"][0], rel=1e-3)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-2)
    assert two["val_accuracy"] == pytest.approx(one["val_accuracy"], abs=1e-6)


class _Store:
    """JAX's key-value store as the hosts' clients see it: shared, and a key once set stays (no overwrite)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def key_value_set(self, key: str, value: str) -> None:
        if key in self.values:
            raise RuntimeError(f"ALREADY_EXISTS: {key}")
        self.values[key] = value

    def key_value_try_get(self, key: str) -> str:
        if key not in self.values:
            raise RuntimeError(f"NOT_FOUND: {key}")
        return self.values[key]


def test_hosts_agree_on_the_batch_after_which_all_stop():
    """algo-2 gets SIGTERM after its batch 5 while algo-1 already finished batch 5 (it may be one batch ahead)."""
    store = _Store()
    chief, worker = (distribute.Runtime(HOSTS_3[:2], i, 30, None, "algo-1:8890", 2) for i in (0, 1))
    assert not chief.agree_stop(False, 5, store)  # the chief looked before the worker asked
    assert not worker.agree_stop(True, 5, store)  # the worker asks for "after batch 6"
    assert chief.agree_stop(True, 6, store)  # asked too, later: the first request holds (after batch 6)
    assert store.values[distribute.STOP_KEY] == "6"
    assert worker.agree_stop(False, 6, store) and chief.agree_stop(False, 6, store)


def test_one_host_stops_as_soon_as_it_is_asked():
    placement = distribute.Placement.single()
    assert placement.agree_stop(True, 1) and not placement.agree_stop(False, 1)


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["algo-1", "algo-2"])
def test_sigterm_to_one_host_stops_every_host_after_a_checkpoint(tmp_path, victim):
    """The stop is agreed: every host ends within the grace with a reason, none waits for a collective, and the
    chief's checkpoint is the one a rerun resumes from."""
    _dataset(tmp_path)
    runs = start_job(tmp_path, tmp_path / "data", {"epochs": "200", "batch_size": "4", "workers": "0",
                                                   "host_timeout_seconds": "120"})
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while "epoch=2 " not in runs["algo-1"].log:
        assert time.monotonic() < deadline and all(r.process.poll() is None for r in runs.values()), \
            runs["algo-1"].log[-3000:]
        time.sleep(0.5)
    os.kill(runs[victim].process.pid, signal.SIGTERM)
    stopped = time.monotonic()
    codes = _wait_all(runs, timeout=60)
    assert time.monotonic() - stopped < 20 and codes == {"algo-1": 143, "algo-2": 143}
    saved = checkpoints.latest(runs["algo-1"].root / "checkpoints")
    assert saved.step > 0 or saved.epoch >= 2  # the stop's own checkpoint, in the middle of an epoch or after it
    for host, run in runs.items():
        assert run.failure.startswith("stopped by SIGTERM") and run.failure.count("\n") == 1
        assert ("another host of the job was stopped" in run.failure) == (host != victim)
    assert str(saved.path) in runs["algo-1"].failure
