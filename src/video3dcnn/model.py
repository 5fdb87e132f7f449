"""3D-CNN classifiers: ``build_model`` returns an uncompiled, named functional ``keras.Model``.

Input is a batch of uint8 clips laid out ``(N, T, H, W, C)`` (frames are the time axis, never the seed's colour
reshape); the model casts and rescales them itself, so loaders keep uint8 (4x less memory and host-to-device traffic).
Only ``keras`` and ``keras.layers`` are used, so the same code runs on the TensorFlow and JAX backends.

Architectures:
- ``r2plus1d`` (default): see below; on the hard benchmark set it generalised best (docs/benchmarks.md).
- ``bn``: four Conv3D + BatchNormalization + ReLU blocks, max-pooling space first and time later, then global
  average pooling, dropout and a softmax head (keras-io ``3D_image_classification`` idiom). Measured better than
  ``seed`` on the validation split (docs/training.md) with ~6x fewer operations per clip.
- ``seed``: the network of kcct-fujimotolab/3DCNN as its README results were made (the Keras 1.2, all-ReLU
  version): Conv3D 32, 32 | max-pool 3 | dropout 0.25 | Conv3D 64, 64 | max-pool 3 | dropout 0.25 | dense 512 |
  dropout | softmax, fed raw 0-255 values like the original. It stays at chance on the hard benchmark set, with raw
  or 0-1 inputs alike: it fits its training clips slowly and does not generalise (no normalisation, a dense layer
  on the flattened map; docs/benchmarks.md).
- ``motion``: the ``bn`` network fed each frame (from the second on) together with its difference from the previous
  frame (6 channels for RGB): a fixed, parameter-free stem that makes what moves stand out from a still or slowly
  panning background.
- ``r2plus1d``: the ``bn`` blocks with each 3x3x3 convolution factorised into a 1x3x3 spatial and a 3x1x1 temporal
  one, each with BatchNorm and ReLU ((2+1)D, Tran et al. 2018): twice the non-linearities for fewer weights.
"""

from __future__ import annotations

import keras
from keras import layers

from video3dcnn.hyperparameters import ARCHITECTURES

INPUT_DTYPE = "uint8"


def build_model(
    input_shape: tuple[int, int, int, int],
    num_classes: int,
    arch: str = "r2plus1d",
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
    body = {"bn": _bn_body, "seed": _seed_body, "r2plus1d": _r2plus1d_body, "motion": _motion_body}[arch]
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


def _factorised_block(x, filters: int, pool: tuple[int, int, int] | None, name: str):
    """Conv3D 1x3x3 -> BN -> ReLU -> Conv3D 3x1x1 -> BN -> ReLU -> optional max-pool: a (2+1)D block."""
    for part, kernel in (("space", (1, 3, 3)), ("time", (3, 1, 1))):
        x = layers.Conv3D(filters, kernel, padding="same", use_bias=False, name=f"{name}_{part}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_{part}_bn")(x)
        x = layers.Activation("relu", name=f"{name}_{part}_relu")(x)
    if pool is not None:
        x = layers.MaxPooling3D(pool, padding="same", name=f"{name}_pool")(x)
    return x


def _stacked_blocks(x, block):
    """``_BN_BLOCKS`` made by ``block`` (``_conv_bn_block`` or ``_factorised_block``), then global average pooling."""
    for index, (filters, pool) in enumerate(_BN_BLOCKS, start=1):
        x = block(x, filters, pool, f"block{index}")
    return layers.GlobalAveragePooling3D(name="pool")(x)


def _r2plus1d_body(inputs):
    return _stacked_blocks(layers.Rescaling(1.0 / 255, name="rescale")(inputs), _factorised_block)


def _motion_body(inputs):
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    later = layers.Cropping3D(((1, 0), (0, 0), (0, 0)), name="frames_from_second")(x)
    earlier = layers.Cropping3D(((0, 1), (0, 0), (0, 0)), name="frames_to_last_but_one")(x)
    difference = layers.Subtract(name="frame_difference")([later, earlier])
    x = layers.Concatenate(axis=-1, name="frames_and_differences")([later, difference])
    return _stacked_blocks(x, _conv_bn_block)


_BN_BLOCKS = ((16, (1, 2, 2)), (32, (2, 2, 2)), (64, (2, 2, 2)), (128, None))


def _bn_body(inputs):
    return _stacked_blocks(layers.Rescaling(1.0 / 255, name="rescale")(inputs), _conv_bn_block)


def _seed_body(inputs):
    x = layers.Rescaling(1.0, name="cast")(inputs)  # the original trained on raw 0-255 values (scaling: no better)
    for index, filters in enumerate((32, 64), start=1):
        for conv in (1, 2):
            x = layers.Conv3D(filters, 3, padding="same", activation="relu", name=f"block{index}_conv{conv}")(x)
        x = layers.MaxPooling3D(3, padding="same", name=f"block{index}_pool")(x)
        x = layers.Dropout(0.25, name=f"block{index}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(512, activation="relu", name="dense")(x)
