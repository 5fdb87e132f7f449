"""Model shapes at toy size, one training step and the model.keras round trip (that only distribute imports
TensorFlow, for backend independence, is an import-linter contract: test_import_contracts)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from trainkit import class_clips

from video3dcnn.config import ClipSpec
from video3dcnn.hyperparameters import ARCHITECTURES
from video3dcnn.model import build_model

TOY_SHAPE = (8, 16, 16, 3)


def _clips(count: int, shape=TOY_SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_output_shape_and_probabilities(arch):
    model = build_model(TOY_SHAPE, 5, arch)
    probabilities = np.asarray(model.predict_on_batch(_clips(3)))
    assert probabilities.shape == (3, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.name == f"video3dcnn_{arch}"
    assert model.inputs[0].dtype == "uint8"
    assert not model.compiled


@pytest.mark.parametrize("shape", [(15, 32, 32, 3), (10, 32, 32, 1), (1, 8, 8, 3), (16, 12, 20, 3)])
def test_any_clip_shape_builds(shape):
    assert build_model(shape, 2).predict_on_batch(_clips(1, shape)).shape == (1, 2)


def test_seed_arch_has_the_original_parameter_count():
    """Colour, 15 frames, 8 classes: 1,249,512 parameters like the SageMaker port (seed notes, section 1)."""
    assert build_model((15, 32, 32, 3), 8, "seed").count_params() == 1_249_512


def test_seed_arch_is_all_relu():
    model = build_model((15, 32, 32, 3), 8, "seed")
    activations = {layer.name: layer.activation.__name__ for layer in model.layers if hasattr(layer, "activation")}
    assert {name: fn for name, fn in activations.items() if name != "probabilities"} == {
        "block1_conv1": "relu", "block1_conv2": "relu", "block2_conv1": "relu", "block2_conv2": "relu", "dense": "relu"
    }


def test_frames_are_the_time_axis():
    """Reversing time changes a 3D-CNN's features; a model that mixed frames into channels would not see order."""
    model = build_model(TOY_SHAPE, 4, "bn")
    features = keras.Model(model.inputs, model.get_layer("pool").output)
    clips = _clips(2)
    assert not np.allclose(features.predict_on_batch(clips), features.predict_on_batch(clips[:, ::-1]))


def test_unknown_arch_and_too_few_classes():
    with pytest.raises(ValueError, match="arch"):
        build_model(TOY_SHAPE, 3, "resnet")
    with pytest.raises(ValueError, match="2 classes"):
        build_model(TOY_SHAPE, 1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_one_training_step_lowers_the_loss_on_that_batch(arch):
    keras.utils.set_random_seed(1)
    model = build_model(TOY_SHAPE, 2, arch)
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
    labels = np.array([0, 1] * 4, np.int32)
    clips = class_clips(labels, ClipSpec(*TOY_SHAPE[:3]), np.random.default_rng(0))
    before = model.evaluate(clips, labels, verbose=0, return_dict=True)["loss"]
    for _ in range(3):
        model.train_on_batch(clips, labels)
    after = model.evaluate(clips, labels, verbose=0, return_dict=True)["loss"]
    assert np.isfinite(after) and after < before


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_keras_file_round_trip_gives_equal_outputs(arch, tmp_path):
    model = build_model(TOY_SHAPE, 3, arch)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.train_on_batch(_clips(4), np.array([0, 1, 2, 0], np.int32))  # moves BatchNorm statistics off defaults
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    clips = _clips(4, seed=3)
    np.testing.assert_allclose(loaded.predict_on_batch(clips), model.predict_on_batch(clips), rtol=1e-5, atol=1e-6)
    assert loaded.name == model.name
