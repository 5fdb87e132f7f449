"""Training hyperparameters: the ``TrainConfig`` dataclass, the seed notebook's aliases, and their parsing.

Hyperparameters reach ``video3dcnn train`` from two places: ``hyperparameters.json`` (values are JSON strings such as
``"3"``, ``"true"`` or ``"\\"adam\\""``) and command-line flags (the sagemaker-training toolkit passes every
hyperparameter again as ``--key value``, the value being Python ``str()`` of the decoded JSON, so ``True``/``False``).
Both go through one parser (``config.coerce_mapping``); precedence is defaults < hyperparameters.json < flags.

No Keras or TensorFlow here: the launch command imports this module to validate hyperparameters.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from video3dcnn.config import add_dataclass_arguments, build, coerce_mapping, field_names
from video3dcnn.errors import ConfigError, UnknownOptionError

logger = logging.getLogger(__name__)

ARCHITECTURES = ("bn", "seed", "r2plus1d", "motion")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
LR_SCHEDULES = ("cosine", "constant")
IGNORED_PREFIXES = ("sagemaker_",)

# The seed notebook's hyperparameter names (kcct-fujimotolab/3DCNN, VerRan/sagemaker-byos-3dcnn), so its
# hyperparameters work unchanged. ``model_dir`` is a real field: SageMaker's TensorFlow estimator passes an S3 URI
# there, which ``resolve_model_dir`` ignores.
ALIASES = {
    "epoch": "epochs",
    "batch": "batch_size",
    "nclass": "num_classes",
    "output": "output_data_dir",
}

MAX_LEARNING_RATE = 10.0  # far above any rate that trains a network; larger is a typo (1e1 for 1e-1) or inf
MAX_WORKERS = 64  # loader threads; beyond a few per core they only add memory (each holds batches in flight)
DIRECTORY_FIELDS = ("data_dir", "validation_dir", "model_dir", "output_data_dir", "checkpoint_dir")


def _hp(default: Any, help_text: str, **metadata: Any) -> Any:
    return field(default=default, metadata={"help": help_text, **metadata})


@dataclass(frozen=True)
class TrainConfig:
    """Every option of ``video3dcnn train``: hyperparameters and the directories they may name.

    Directories are strings (``None``: use the SageMaker channel or the default); ``cli/train.py`` resolves them.
    """

    epochs: int = _hp(60, "passes over the training clips")
    batch_size: int = _hp(16, "clips per training step over the whole job (split over all hosts and devices)")
    learning_rate: float = _hp(3e-3, "initial learning rate of the optimizer")
    optimizer: str = _hp("adam", "adam, rmsprop or sgd (momentum 0.9)", choices=OPTIMIZERS)
    lr_schedule: str = _hp("cosine", "cosine (decays to 0.01x over all epochs) or constant", choices=LR_SCHEDULES)
    arch: str = _hp("r2plus1d", "r2plus1d ((2+1)D blocks), bn (Conv3D+BatchNorm), motion (bn fed frame differences "
                    "too) or seed (the original network)", choices=ARCHITECTURES)
    dropout: float = _hp(0.5, "dropout rate before the classifier")
    seed: int = _hp(0, "random seed for weights, shuffling and augmentation")
    early_stopping_patience: int | None = _hp(
        None, "stop after this many epochs without a better val_loss and keep the best weights (off by default)"
    )
    augment: bool = _hp(True, "class-preserving jitter: shift, brightness, contrast, temporal resampling; never flips")
    export_saved_model: bool = _hp(
        False, "also write a TensorFlow SavedModel to <model_dir>/saved_model/1 (TensorFlow Serving; needs TensorFlow)"
    )
    num_classes: int | None = _hp(None, "expected number of classes; training refuses data with another count")
    workers: int = _hp(2, f"loader threads that prepare batches while the model trains (0 to {MAX_WORKERS})")
    shuffle_buffer_mb: int = _hp(
        1024, "MiB of decoded clips the loader holds (three windows of shards, each shuffled together); bounds its memory"
    )
    host_timeout_seconds: float = _hp(
        300, "multi-host jobs: how long a host waits for the others (to join, to complete a step) before it stops "
        "the job with a reason naming the missing host"
    )
    checkpoint_minutes: float = _hp(
        10, "besides every epoch, checkpoint at the first batch boundary after this many minutes since the last "
        "checkpoint, so that a stop or a lost instance costs at most that much work (needs a checkpoint directory)"
    )
    data_dir: str | None = _hp(None, "processed shards (default: the 'training' channel)", metavar="DIR")
    validation_dir: str | None = _hp(None, "separate validation shards (default: the 'validation' channel, if any)",
                                     metavar="DIR")
    model_dir: str | None = _hp(None, "where model.keras goes (default: SM_MODEL_DIR in a job, else ./model)",
                                metavar="DIR")
    output_data_dir: str | None = _hp(None, "metrics and plots (default: SM_OUTPUT_DATA_DIR in a job, else ./output)",
                                      metavar="DIR")
    checkpoint_dir: str | None = _hp(None, "per-epoch checkpoints (default: /opt/ml/checkpoints in a job, else off)",
                                     metavar="DIR")

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "shuffle_buffer_mb": self.shuffle_buffer_mb}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("host_timeout_seconds", "checkpoint_minutes"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not (math.isfinite(self.learning_rate) and 0 < self.learning_rate <= MAX_LEARNING_RATE):
            raise ValueError(f"learning_rate must be a number above 0 and at most {MAX_LEARNING_RATE:g}, got "
                             f"{self.learning_rate} (typical: 1e-4 to 1e-2)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 0 and {MAX_WORKERS} (loader threads), got {self.workers}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"early_stopping_patience must be at least 1, got {self.early_stopping_patience}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")

    def hyperparameters(self) -> dict[str, Any]:
        """The options that shape training (everything but the directories), for logs and metrics.json."""
        return {name: getattr(self, name) for name in field_names(TrainConfig) if name not in DIRECTORY_FIELDS}


def valid_names() -> list[str]:
    """Accepted option names: the fields and the aliases."""
    return sorted({*field_names(TrainConfig), *ALIASES})


def parse_layer(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Coerce one layer of raw options (hyperparameters.json or flags) into typed TrainConfig fields.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones, aliases included) or a bad value.
    """
    try:
        return coerce_mapping(TrainConfig, raw, aliases=ALIASES, ignore_prefixes=IGNORED_PREFIXES)
    except UnknownOptionError as exc:  # reworded: the valid names include the aliases
        raise unknown_hyperparameters_error([exc.name]) from None


def resolve_config(file_layer: Mapping[str, Any], flag_layer: Mapping[str, Any]) -> TrainConfig:
    """Build the TrainConfig: defaults < ``file_layer`` (hyperparameters.json) < ``flag_layer`` (flags)."""
    return build(TrainConfig, parse_layer(file_layer), parse_layer(flag_layer))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--name``/``--kebab-name`` flags (and the alias flags) for every TrainConfig field."""
    add_dataclass_arguments(parser, TrainConfig, aliases=ALIASES)


def unknown_arguments_error(extras: Sequence[str]) -> ConfigError:
    """The error for command-line words that no option claimed (e.g. ``--batchsize 8``)."""
    names = [word for word in extras if word.startswith("-")] or list(extras)
    return unknown_hyperparameters_error([name.lstrip("-") for name in names])


def unknown_hyperparameters_error(names: Sequence[str]) -> ConfigError:
    """The error naming hyperparameters that do not exist, with every valid name (aliases included)."""
    shown = ", ".join(f"'{name}'" for name in names)
    return ConfigError(f"unknown hyperparameter {shown}; valid names are: {', '.join(valid_names())}")


def is_remote_uri(value: str | None) -> bool:
    """True for ``s3://...`` and other URIs, which SageMaker's TF estimator passes as ``model_dir``."""
    return bool(value) and "://" in value
