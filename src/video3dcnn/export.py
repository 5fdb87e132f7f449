"""TensorFlow SavedModel export, for TensorFlow Serving and SageMaker's TensorFlow serving containers.

Imports only Keras: ``keras.Model.export`` writes the SavedModel from any backend (from JAX through ``jax2tf``), but
needs TensorFlow installed (checked here); the training image has it for this export alone. No module of the package
imports TensorFlow itself. ``model.keras`` stays the primary artefact; the SavedModel is an extra for serving stacks
that cannot load Keras files.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

import keras

from video3dcnn.errors import ConfigError

logger = logging.getLogger(__name__)

SAVED_MODEL_DIR = "saved_model"
SAVED_MODEL_VERSION = "1"  # TensorFlow Serving loads <base>/<version>/
ENDPOINT = "serve"  # the signature: uint8 clips [N, T, H, W, C] in, class probabilities [N, K] out


def export_saved_model(model: keras.Model, model_dir: Path) -> Path:
    """Write ``model`` as a SavedModel to ``<model_dir>/saved_model/1`` (replacing an earlier export) and return it.

    The directory is written beside the final one and renamed into place, so a killed export leaves no half model.

    Raises:
        ConfigError: TensorFlow is not installed (the SavedModel format needs it).
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise ConfigError("export_saved_model needs TensorFlow installed (pip install tensorflow-cpu); model.keras "
                          "is written anyway")
    target = Path(model_dir) / SAVED_MODEL_DIR / SAVED_MODEL_VERSION
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    model.export(str(staging), format="tf_saved_model", verbose=False)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    logger.info("SavedModel written to %s (signature '%s')", target, ENDPOINT)
    return target
