"""The Keras callbacks of training: one metric line per epoch, checkpoints with the history after each epoch and every
few minutes, a stop at a batch boundary, and the end of a run whose loss is not a number."""

from __future__ import annotations

import contextlib
import logging
import re
import signal

import keras
import numpy as np
import pytest

from video3dcnn import checkpoints
from video3dcnn.callbacks import EpochCheckpoint, GracefulStop, MetricLine, NonFiniteLoss, Progress
from video3dcnn.errors import DataError
from video3dcnn.metric_line import METRIC_DEFINITIONS
from video3dcnn.signals import Stopped, StopRequest


def _fit(epochs: int, callbacks: list, initial_epoch: int = 0, validate: bool = True) -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    data, labels = np.random.default_rng(0).random((8, 4), np.float32), np.array([0, 1] * 4)
    model.fit(data, labels, batch_size=4, epochs=epochs, initial_epoch=initial_epoch, verbose=0, callbacks=callbacks,
              validation_data=(data, labels) if validate else None)
    return model


def test_metric_line_logs_one_parseable_line_per_epoch_with_its_rate(caplog):
    with caplog.at_level(logging.INFO, logger="video3dcnn.callbacks"):
        _fit(2, [MetricLine(num_clips=8)])
    lines = [record.getMessage() for record in caplog.records]
    assert [line.split()[0] for line in lines] == ["epoch=1", "epoch=2"]  # 1-based, like the checkpoints
    for line in lines:
        assert re.fullmatch(r"epoch=\d( \w+=\d\.\d{4}){4}; time=\d+\.\ds clips_per_second=\d+\.\d", line)
        assert all(re.search(d["Regex"], line) for d in METRIC_DEFINITIONS)


def test_epoch_checkpoint_saves_after_every_epoch_with_the_history_so_far(tmp_path):
    earlier = {"epoch": [1], "loss": [2.0], "accuracy": [0.5]}  # from the checkpoint a resumed run starts at
    _fit(3, [EpochCheckpoint(tmp_path, "algo-1", earlier, keep=2)], initial_epoch=1, validate=False)
    saved = checkpoints.list_checkpoints(tmp_path)
    assert [(c.host, c.epoch) for c in saved] == [("algo-1", 2), ("algo-1", 3)]  # pruned to the newest two
    history = saved[-1].history()
    assert history["epoch"] == [1, 2, 3] and len(history["loss"]) == len(history["accuracy"]) == 3
    assert history["loss"][0] == 2.0 and earlier == {"epoch": [1], "loss": [2.0], "accuracy": [0.5]}  # not mutated
    assert checkpoints.load(saved[-1]).optimizer.iterations == 2 * 2  # two epochs of two batches, this run


def test_epoch_checkpoint_saves_inside_its_scope(tmp_path):
    """A multi-replica job's chief saves without the distribution (Placement.solo): the scope wraps every save."""
    inside = []

    @contextlib.contextmanager
    def scope():
        inside.append(len(checkpoints.list_checkpoints(tmp_path)))  # entered before this epoch's file exists
        yield

    _fit(2, [EpochCheckpoint(tmp_path, "algo-1", scope=scope)], validate=False)
    assert inside == [0, 1] and len(checkpoints.list_checkpoints(tmp_path)) == 2


def test_progress_reports_every_step_and_the_start_of_each_loop():
    events = []
    _fit(2, [Progress(lambda: events.append("step"), events.append)])
    assert events.count("train") == 1 and events.count("test") == 2  # fit's loop once, a validation per epoch
    assert events.count("step") == 2 * (2 + 2 + 1)  # per epoch: 2 training and 2 validation batches, the epoch end


def _fit_batches(callbacks: list, batches: int = 3, learning_rate: float = 1e-3) -> keras.Model:
    """Two epochs of ``batches`` batches; a learning rate of infinity makes the loss NaN from the second batch on."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    data, labels = np.random.default_rng(0).random((4 * batches, 4), np.float32), np.array([0, 1] * 2 * batches)
    model.fit(data, labels, batch_size=4, epochs=2, verbose=0, callbacks=callbacks)
    return model


class _Clock(keras.callbacks.Callback):
    """A clock that moves 25 s at the start of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def on_train_batch_begin(self, batch, logs=None):
        self.now += 25


def test_a_checkpoint_is_due_every_few_minutes_in_the_middle_of_an_epoch(tmp_path):
    """Due at every batch (25 s apart > 20 s), except the last of an epoch, whose epoch checkpoint follows."""
    clock = _Clock()
    _fit_batches([clock, EpochCheckpoint(tmp_path, "algo-1", keep=10, every_seconds=20, clock=clock)])
    saved = [c.position for c in checkpoints.list_checkpoints(tmp_path)]
    assert saved == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
    middle = checkpoints.list_checkpoints(tmp_path)[1]
    assert middle.path.name == "checkpoint-algo-1-epoch0000-step000002.keras"
    assert checkpoints.load(middle).optimizer.iterations == 2  # the model as it was after that batch
    assert checkpoints.latest(tmp_path).position == (2, 0)


def test_without_a_time_limit_checkpoints_come_after_epochs_only(tmp_path):
    clock = _Clock()
    _fit_batches([clock, EpochCheckpoint(tmp_path, "algo-1", keep=10, clock=clock)])
    assert [c.position for c in checkpoints.list_checkpoints(tmp_path)] == [(1, 0), (2, 0)]


class _SignalAt(keras.callbacks.Callback):
    """Plays SIGTERM arriving during the given training batch (counted over the whole fit, 1-based)."""

    def __init__(self, request: StopRequest, batch: int) -> None:
        super().__init__()
        self.request, self.batch, self.seen = request, batch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.batch:
            self.request(signal.SIGTERM)


class _OneHost:
    def __init__(self) -> None:
        self.saved = 0

    def agree_stop(self, requested: bool, batches: int) -> bool:
        return requested

    def stop_saved(self) -> None:
        self.saved += 1


def test_a_stop_checkpoints_after_the_batch_in_flight_and_raises_the_reason(tmp_path):
    request, host = StopRequest(), _OneHost()
    checkpoint = EpochCheckpoint(tmp_path, "algo-1")
    with request.deferring(), pytest.raises(Stopped) as caught:
        _fit_batches([_SignalAt(request, 5), checkpoint, GracefulStop(request, host, checkpoint)])
    path = tmp_path / "checkpoint-algo-1-epoch0001-step000002.keras"  # epoch 1 (3 batches) done, 2 of epoch 2
    assert str(caught.value) == f"stopped by SIGTERM (docker stop, StopTrainingJob or a spot reclaim); saved " \
        f"checkpoint {path} (1 epochs done and 2 batches of epoch 2)"
    assert checkpoints.latest(tmp_path).path == path and host.saved == 1
    assert checkpoints.load(checkpoints.latest(tmp_path)).optimizer.iterations == 5


def test_a_stop_in_the_last_batch_waits_for_the_epoch_checkpoint(tmp_path):
    request = StopRequest()
    checkpoint = EpochCheckpoint(tmp_path, "algo-1")
    with request.deferring(), pytest.raises(Stopped, match="saved checkpoint .*epoch0001.keras \\(1 epochs done\\)"):
        _fit_batches([_SignalAt(request, 3), checkpoint, GracefulStop(request, _OneHost(), checkpoint)])
    assert [c.position for c in checkpoints.list_checkpoints(tmp_path)] == [(1, 0)]


def test_a_host_without_checkpoints_stops_all_the_same(tmp_path):
    request = StopRequest()
    with request.deferring(), pytest.raises(Stopped, match="this host writes no checkpoint"):
        _fit_batches([_SignalAt(request, 1), GracefulStop(request, _OneHost())])


def test_a_loss_that_is_not_a_number_ends_training_with_a_reason():
    with pytest.raises(DataError, match=r"^the training loss became nan at batch 2 of epoch 1: training diverged; "
                                        r"lower learning_rate \(now inf\)"):
        _fit_batches([NonFiniteLoss(float("inf"))], learning_rate=float("inf"))
