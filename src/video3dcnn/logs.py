"""Logging set-up; called only from the CLI."""

from __future__ import annotations

import logging
import os
import sys

LOG_LEVEL_ENV = "VIDEO3DCNN_LOG_LEVEL"
_NOISY = ("boto3", "botocore", "urllib3", "s3transfer", "matplotlib", "PIL", "absl", "tensorflow", "h5py", "jax")


def configure_logging(level: str | int | None = None) -> None:
    """Log to stderr with timestamp, logger name and level; quieten third-party and TensorFlow noise."""
    level = level or os.environ.get(LOG_LEVEL_ENV, "INFO")
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
