"""The files of a trained-model directory: what ``train`` writes and ``predict``/``evaluate`` read.

A model directory (``SM_MODEL_DIR`` in a training job, packed by SageMaker into ``model.tar.gz``) holds
``model.keras`` (the Keras model), ``classes.txt`` (``shards.CLASSES_FILE``: line i names output i) and
``clip_spec.json`` (``ClipSpec.to_dict``: how a video becomes one model input).
"""

from __future__ import annotations

from video3dcnn.shards import CLASSES_FILE

MODEL_FILE = "model.keras"
CLIP_SPEC_FILE = "clip_spec.json"
MODEL_ARCHIVE = "model.tar.gz"  # what SageMaker uploads from the model directory
MODEL_DIR_FILES = (MODEL_FILE, CLASSES_FILE, CLIP_SPEC_FILE)  # everything predict needs
