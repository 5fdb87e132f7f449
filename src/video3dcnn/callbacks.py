"""Keras callbacks of ``video3dcnn train``: the per-epoch metric line (``metric_line``) and the per-epoch checkpoint
(``checkpoints``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import keras

from video3dcnn import checkpoints
from video3dcnn.metric_line import format_metric_line

logger = logging.getLogger(__name__)


class MetricLine(keras.callbacks.Callback):
    """Log one stable ``epoch=N loss=... val_accuracy=...;`` line per epoch (what metric_definitions parse)."""

    def __init__(self, num_clips: int) -> None:
        super().__init__()
        self.num_clips = num_clips
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        seconds = time.perf_counter() - self._started
        rate = self.num_clips / seconds if seconds > 0 else 0.0
        logger.info("%s time=%.1fs clips_per_second=%.1f", format_metric_line(epoch + 1, logs or {}), seconds, rate)


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, save the model (optimizer state included) and the history so far to ``directory``.

    File names carry the host and the 1-based epoch (``checkpoint-<host>-epoch0003.keras`` plus a ``.json`` with
    the history), so the hosts of a job can share one S3 checkpoint prefix. Only the newest ``keep`` checkpoints of
    this host are kept: SageMaker mirrors deletions to S3, which bounds the checkpoint storage.

    Args:
        directory: the checkpoint directory (``/opt/ml/checkpoints`` in a job).
        host: this host's name.
        history: metric name -> values of the epochs before this run (from the checkpoint resumed from).
        keep: how many checkpoints of this host to keep.
    """

    def __init__(self, directory: Path, host: str, history: Mapping[str, list] | None = None, keep: int = 2) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.host = host
        self.history = {key: list(values) for key, values in (history or {}).items()}
        self.keep = keep

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self.history.setdefault("epoch", []).append(epoch + 1)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        checkpoints.save(self.model, self.directory, self.host, epoch + 1, self.history)
        checkpoints.prune(self.directory, self.host, self.keep)
