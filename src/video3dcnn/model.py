"""3D-CNN classifiers: ``build_model`` returns an uncompiled, named functional ``keras.Model``.

Input is a batch of uint8 clips laid out ``(N, T, H, W, C)`` (frames are the time axis, never the seed's colour
reshape); the model casts and rescales them itself, so loaders keep uint8 (4x less memory and host-to-device traffic).
Only ``keras`` and ``keras.layers`` are used, so the same code runs on the TensorFlow and JAX backends.

Architectures:
- ``bn`` (default): four Conv3D + BatchNormalization + ReLU blocks, max-pooling space first and time later, then
  global average pooling, dropout and a softmax head (keras-io ``3D_image_classification`` idiom). Measured better
  than ``seed`` on the validation split (docs/training.md) with ~6x fewer operations per clip.
- ``seed``: the network of kcct-fujimotolab/3DCNN as its README results were made (the Keras 1.2, all-ReLU
  version): Conv3D 32, 32 | max-pool 3 | dropout 0.25 | Conv3D 64, 64 | max-pool 3 | dropout 0.25 | dense 512 |
  dropout | softmax, fed raw 0-255 values like the original.
"""

from __future__ import annotations

import keras
from keras import layers

from video3dcnn.hyperparameters import ARCHITECTURES

INPUT_DTYPE = "uint8"


def build_model(
    input_shape: tuple[int, int, int, int],
    num_classes: int,
    arch: str = "bn",
    dropout: float = 0.5,
) -> keras.Model:
    """Build an uncompiled classifier for clips of ``input_shape``.

    Args:
        input_shape: ``(T, H, W, C)`` of one clip (``ClipSpec.shape``).
        num_classes: size of the softmax output.
        arch: one of ``ARCHITECTURES`` (see the module docstring).
        dropout: dropout rate before the classifier.

    Returns:
        A functional model named ``video3dcnn_<arch>`` mapping uint8 ``(N, T, H, W, C)`` to class probabilities.

    Raises:
        ValueError: unknown ``arch`` or fewer than two classes.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    inputs = keras.Input(shape=tuple(input_shape), dtype=INPUT_DTYPE, name="clips")
    body = _bn_body if arch == "bn" else _seed_body
    features = body(inputs)
    features = layers.Dropout(dropout, name="head_dropout")(features)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(features)
    return keras.Model(inputs, outputs, name=f"video3dcnn_{arch}")


def _conv_bn_block(x, filters: int, pool: tuple[int, int, int] | None, name: str):
    """Conv3D 3x3x3 (no bias) -> BatchNorm -> ReLU -> optional max-pool."""
    x = layers.Conv3D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    if pool is not None:
        x = layers.MaxPooling3D(pool, padding="same", name=f"{name}_pool")(x)
    return x


def _bn_body(inputs):
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = _conv_bn_block(x, 16, (1, 2, 2), "block1")
    x = _conv_bn_block(x, 32, (2, 2, 2), "block2")
    x = _conv_bn_block(x, 64, (2, 2, 2), "block3")
    x = _conv_bn_block(x, 128, None, "block4")
    return layers.GlobalAveragePooling3D(name="pool")(x)


def _seed_body(inputs):
    x = layers.Rescaling(1.0, name="cast")(inputs)  # the original trained on raw 0-255 values
    for index, filters in enumerate((32, 64), start=1):
        for conv in (1, 2):
            x = layers.Conv3D(filters, 3, padding="same", activation="relu", name=f"block{index}_conv{conv}")(x)
        x = layers.MaxPooling3D(3, padding="same", name=f"block{index}_pool")(x)
        x = layers.Dropout(0.25, name=f"block{index}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(512, activation="relu", name="dense")(x)
