"""Per-epoch checkpoints: names carry host and epoch, the newest wins, pruning, history, resuming and bad files."""

from __future__ import annotations

import json
import logging

import keras
import numpy as np
import pytest

from video3dcnn import checkpoints
from video3dcnn.errors import DataError


def _model() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs), name="tiny")
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model


def test_a_checkpoint_round_trips_the_model_with_its_optimizer_state_and_history(tmp_path):
    model = _model()
    data, labels = np.random.default_rng(0).random((8, 4), np.float32), np.array([0, 1] * 4)
    model.train_on_batch(data, labels)
    saved = checkpoints.save(model, tmp_path, "algo-1", 3, {"epoch": [1, 2, 3], "loss": [0.9, 0.8, 0.7]})
    assert saved.path.name == "checkpoint-algo-1-epoch0003.keras" and saved.path.is_file()
    assert json.loads(saved.history_path.read_text()) == {
        "host": "algo-1", "epoch": 3, "step": 0, "history": {"epoch": [1, 2, 3], "loss": [0.9, 0.8, 0.7]}}
    assert saved.history() == {"epoch": [1, 2, 3], "loss": [0.9, 0.8, 0.7]}
    loaded = checkpoints.load(saved)
    np.testing.assert_allclose(loaded.predict_on_batch(data), model.predict_on_batch(data), rtol=1e-6)
    assert int(loaded.optimizer.iterations) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [saved.history_path.name, saved.path.name]  # no temporaries


def _touch(directory, host: str, epoch: int, history: bool = True):
    path = checkpoints.checkpoint_path(directory, host, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"model")
    if history:
        path.with_suffix(".json").write_text(json.dumps({"history": {"epoch": list(range(1, epoch + 1))}}))
    return path


def test_the_latest_is_the_most_epochs_and_this_hosts_own_at_a_tie(tmp_path):
    assert checkpoints.latest(tmp_path / "missing") is None and checkpoints.latest(None) is None
    _touch(tmp_path, "algo-2", 3)
    _touch(tmp_path, "algo-1", 3)
    _touch(tmp_path, "algo-1", 12)
    _touch(tmp_path, "algo-2", 12)
    (tmp_path / "checkpoint-algo-1-epoch12.keras").write_bytes(b"not our name: 4 digits at least")
    (tmp_path / ".checkpoint-algo-1-epoch0013.keras.x1.tmp.keras").write_bytes(b"half written")
    listed = [(c.host, c.epoch) for c in checkpoints.list_checkpoints(tmp_path)]
    assert listed == [("algo-1", 3), ("algo-2", 3), ("algo-1", 12), ("algo-2", 12)]
    latest = checkpoints.latest(tmp_path, "algo-2")
    assert (latest.host, latest.epoch) == ("algo-2", 12)
    assert checkpoints.latest(tmp_path, "algo-9").host == "algo-2"  # another host's, when this one has none


def test_pruning_keeps_the_newest_of_this_host_only(tmp_path):
    for epoch in (1, 2, 3):
        _touch(tmp_path, "algo-1", epoch)
    other = _touch(tmp_path, "algo-2", 1)
    checkpoints.prune(tmp_path, "algo-1", keep=2)
    assert sorted(p.name for p in tmp_path.glob("*algo-1*")) == [
        "checkpoint-algo-1-epoch0002.json", "checkpoint-algo-1-epoch0002.keras",
        "checkpoint-algo-1-epoch0003.json", "checkpoint-algo-1-epoch0003.keras",
    ]
    assert other.is_file()


def test_a_missing_history_starts_history_at_the_checkpoint(tmp_path, caplog):
    path = _touch(tmp_path, "algo-1", 4, history=False)
    (found,) = checkpoints.list_checkpoints(tmp_path)
    with caplog.at_level(logging.WARNING, logger="video3dcnn.checkpoints"):
        assert found.history() == {}
    assert str(path) in caplog.text and "start at epoch 4" in caplog.text


def test_an_unreadable_checkpoint_is_a_one_line_data_error(tmp_path):
    found = checkpoints.Checkpoint(_touch(tmp_path, "algo-1", 2), "algo-1", 2)
    with pytest.raises(DataError, match="cannot resume from checkpoint .*epoch0002.keras.*delete it"):
        checkpoints.load(found)
