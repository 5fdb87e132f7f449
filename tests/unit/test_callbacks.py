"""The Keras callbacks of training: one metric line per epoch, and a checkpoint with the history after each."""

from __future__ import annotations

import contextlib
import logging
import re

import keras
import numpy as np

from video3dcnn import checkpoints
from video3dcnn.callbacks import EpochCheckpoint, MetricLine, Progress
from video3dcnn.metric_line import METRIC_DEFINITIONS


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
