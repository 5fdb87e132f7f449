"""The optional TensorFlow SavedModel export: same probabilities as model.keras, atomic, from any backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from trainkit import write_dataset

from video3dcnn.errors import ConfigError
from video3dcnn.export import ENDPOINT, export_saved_model
from video3dcnn.hyperparameters import TrainConfig, resolve_config
from video3dcnn.training import TrainPaths, train


@pytest.mark.slow
def test_training_with_export_writes_a_servable_saved_model(tmp_path):
    import tensorflow as tf

    index = write_dataset(tmp_path / "data", classes=("a", "b"), clips_per_class=4)
    paths = TrainPaths(tmp_path / "model", tmp_path / "output", None)
    config = TrainConfig(epochs=1, batch_size=4, workers=0, export_saved_model=True)
    train(config, index, None, paths)
    exported = tmp_path / "model" / "saved_model" / "1"
    assert (exported / "saved_model.pb").is_file()
    assert not list((tmp_path / "model" / "saved_model").glob(".*"))  # no staging directory left behind

    model = keras.saving.load_model(tmp_path / "model" / "model.keras")
    clips = np.random.default_rng(0).integers(0, 256, (3, *index.clip_spec.shape), dtype=np.uint8)
    loaded = tf.saved_model.load(str(exported))  # keep a reference: its variables die with it
    probabilities = getattr(loaded, ENDPOINT)(tf.constant(clips))
    np.testing.assert_allclose(np.asarray(probabilities), model.predict(clips, verbose=0), rtol=1e-5, atol=1e-6)


def test_export_without_tensorflow_is_refused(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "tensorflow" else find_spec(name, *args))
    with pytest.raises(ConfigError, match="needs TensorFlow installed"):
        export_saved_model(object(), tmp_path)
    assert not (tmp_path / "saved_model").exists()


@pytest.mark.parametrize("raw, expected", [({}, False), ({"export_saved_model": "true"}, True), ({"export-saved-model": "False"}, False)])
def test_the_hyperparameter_parses_and_defaults_off(raw, expected):
    assert resolve_config(raw, {}).export_saved_model is expected
