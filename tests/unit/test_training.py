"""training.train on tiny shards: artefacts, metric lines, checkpoints and resuming an interrupted run."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal

import keras
import pytest
from trainkit import write_dataset

from video3dcnn import checkpoints
from video3dcnn.distribute import Placement
from video3dcnn.hyperparameters import TrainConfig
from video3dcnn.partition import Share
from video3dcnn.signals import Stopped, StopRequest, handling_signal
from video3dcnn.training import TrainPaths, history_csv, train

FAST = {"batch_size": 4, "workers": 0, "learning_rate": 3e-3}
ALGO_1 = Placement.single("algo-1")


def _paths(root) -> TrainPaths:
    return TrainPaths(root / "model", root / "output", root / "ckpt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    index = write_dataset(root / "data", classes=("a", "b", "c"), clips_per_class=8)
    config = TrainConfig(epochs=3, **FAST)
    result = train(config, index, None, _paths(root), ALGO_1)
    return root, index, result


def test_model_dir_holds_everything_predict_needs(trained):
    root, index, _ = trained
    assert (root / "model" / "classes.txt").read_text().split() == ["a", "b", "c"]
    assert json.loads((root / "model" / "clip_spec.json").read_text())["frames"] == index.clip_spec.frames
    model = keras.saving.load_model(root / "model" / "model.keras")
    assert model.outputs[0].shape[-1] == 3
    assert not list((root / "model").glob(".*tmp*"))


def test_output_dir_has_metrics_history_and_plots(trained):
    root, _, result = trained
    out = root / "output"
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert set(rows[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 3
    assert metrics["final"]["val_accuracy"] == pytest.approx(result.history["val_accuracy"][-1])
    assert metrics["validation"]["count"] == 6 and len(metrics["validation"]["confusion_matrix"]) == 3
    assert metrics["hyperparameters"]["epochs"] == 3
    for png in ("training_curves.png", "confusion_matrix.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validation_report_scores_the_saved_model(trained):
    """metrics.json's validation block comes from the final model, like Keras' last val_accuracy."""
    result = trained[2]
    assert result.report["accuracy"] == pytest.approx(result.history["val_accuracy"][-1], abs=1e-6)


def test_checkpoints_carry_the_host_and_only_the_newest_two_stay(trained):
    names = sorted(path.name for path in (trained[0] / "ckpt").iterdir())
    assert names == [
        "checkpoint-algo-1-epoch0002.json", "checkpoint-algo-1-epoch0002.keras",
        "checkpoint-algo-1-epoch0003.json", "checkpoint-algo-1-epoch0003.keras",
    ]


def test_a_finished_checkpoint_means_nothing_left_to_train(trained, tmp_path):
    root, index, _ = trained
    result = train(TrainConfig(epochs=3, **FAST), index, None, TrainPaths(tmp_path / "m", tmp_path / "o", root / "ckpt"))
    assert result.initial_epoch == 3 and len(result.history["epoch"]) == 3
    assert (tmp_path / "m" / "model.keras").is_file()


class _Interrupt(Exception):
    pass


class _InterruptAfter(keras.callbacks.Callback):
    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise _Interrupt


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_latest_checkpoint(tmp_path, caplog):
    index = write_dataset(tmp_path / "data", clips_per_class=6)
    config = TrainConfig(epochs=4, **FAST)
    with pytest.raises(_Interrupt):
        train(config, index, None, _paths(tmp_path), ALGO_1, extra_callbacks=[_InterruptAfter(2)])
    assert not (tmp_path / "model" / "model.keras").exists()
    assert checkpoints.latest(tmp_path / "ckpt").epoch == 2
    caplog.clear()
    with caplog.at_level(logging.INFO):
        result = train(config, index, None, _paths(tmp_path), ALGO_1)
    assert result.initial_epoch == 2
    assert result.history["epoch"] == [1, 2, 3, 4] and len(result.history["loss"]) == 4
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch=")]
    assert [line.split()[0] for line in lines] == ["epoch=3", "epoch=4"]
    model = keras.saving.load_model(tmp_path / "model" / "model.keras")
    steps_per_epoch = -(-index.num_train // FAST["batch_size"])
    assert int(model.optimizer.iterations) == 4 * steps_per_epoch  # optimizer state came back with the weights


@pytest.mark.slow
def test_non_chief_writes_nothing_and_early_stopping_stops(tmp_path):
    """The worker's role alone (no runtime, no distribution): it trains on its half, writes nothing, logs no lines."""
    index = write_dataset(tmp_path / "data", clips_per_class=4)
    config = TrainConfig(epochs=30, early_stopping_patience=1, **{**FAST, "learning_rate": 0.5})
    worker = Placement("algo-2", ("algo-1", "algo-2"), Share(1, 2, 1))  # a worker's role, without a second host
    result = train(config, index, None, _paths(tmp_path), worker)
    assert len(result.history["epoch"]) < 30
    assert not any((tmp_path / name).exists() for name in ("model", "output", "ckpt"))


def test_history_csv_orders_columns():
    text = history_csv({"val_loss": [0.5, 0.4], "loss": [1.0, 0.9], "epoch": [1, 2]})
    assert text.splitlines() == ["epoch,loss,val_loss", "1,1,0.5", "2,0.9,0.4"]


class _SigtermAtBatch(keras.callbacks.Callback):
    """Sends this process a real SIGTERM during the given training batch of the run (1-based, over all epochs)."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch, self.seen = batch, 0

    def on_train_batch_begin(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_checkpoints_mid_epoch_and_a_rerun_resumes_after_that_batch(tmp_path, caplog):
    """Stopped in batch 2 of epoch 2, resumed after it: every batch trains exactly once (the optimizer counts them)."""
    index = write_dataset(tmp_path / "data", clips_per_class=6)
    config = TrainConfig(epochs=3, **FAST)
    steps = -(-index.num_train // FAST["batch_size"])
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / ".training_curves.png.a1b2c3d4.tmp").write_bytes(b"half a png")  # a killed run's
    stop = StopRequest()
    with handling_signal(signal.SIGTERM, stop), pytest.raises(Stopped) as caught:
        train(config, index, None, _paths(tmp_path), ALGO_1, extra_callbacks=[_SigtermAtBatch(steps + 2)], stop=stop)
    saved = checkpoints.latest(tmp_path / "ckpt")
    assert saved.position == (1, 2) and str(saved.path) in str(caught.value)
    assert not (tmp_path / "model").exists()
    assert not (tmp_path / "output" / ".training_curves.png.a1b2c3d4.tmp").exists()
    with caplog.at_level(logging.INFO):
        result = train(config, index, None, _paths(tmp_path), ALGO_1, stop=StopRequest())
    assert "resuming epoch 2 after its batch 2 of %d" % steps in caplog.text
    assert (result.initial_epoch, result.initial_step) == (1, 2) and result.history["epoch"] == [1, 2, 3]
    model = keras.saving.load_model(tmp_path / "model" / "model.keras")
    assert int(model.optimizer.iterations) == 3 * steps  # no batch skipped, none trained twice
    assert json.loads((tmp_path / "output" / "metrics.json").read_text())["resumed_from_step"] == 2


@pytest.mark.slow
def test_sigterm_before_fitting_stops_at_once(tmp_path, monkeypatch):
    index = write_dataset(tmp_path / "data", clips_per_class=4)
    stop = StopRequest()
    monkeypatch.setattr("video3dcnn.training.build_model", lambda *a: os.kill(os.getpid(), signal.SIGTERM))
    with handling_signal(signal.SIGTERM, stop), pytest.raises(Stopped, match="nothing was in progress"):
        train(TrainConfig(epochs=1, **FAST), index, None, _paths(tmp_path), ALGO_1, stop=stop)


@pytest.mark.slow
def test_an_interrupted_final_write_leaves_no_model_keras_and_no_temporaries(tmp_path, monkeypatch):
    """model.keras is renamed into place last: a model directory that holds it is complete."""
    index = write_dataset(tmp_path / "data", clips_per_class=4)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.keras").write_bytes(b"an earlier run's model")

    def interrupted(*args):
        raise _Interrupt

    monkeypatch.setattr("video3dcnn.training.plot_training_curves", interrupted)
    with pytest.raises(_Interrupt):
        train(TrainConfig(epochs=1, **FAST), index, None, _paths(tmp_path), ALGO_1)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["classes.txt", "clip_spec.json"]
    assert not [p for p in (tmp_path / "output").iterdir() if p.name.startswith(".")]


def test_metrics_json_says_when_training_was_still_improving(trained):
    from video3dcnn.training import TrainResult, metrics_summary

    _, index, _ = trained
    rising = {"epoch": [1, 2, 3, 4, 5], "loss": [2.0, 1.5, 1.0, 0.8, 0.6], "accuracy": [0.2, 0.4, 0.6, 0.7, 0.8]}
    summary = metrics_summary(TrainConfig(epochs=5), index, TrainResult(history=rising))
    assert summary["still_improving"] == ["accuracy"]
    flat = dict(rising, accuracy=[0.2, 0.9, 1.0, 1.0, 1.0])
    assert metrics_summary(TrainConfig(epochs=5), index, TrainResult(history=flat))["still_improving"] == []
