"""Keras callbacks of ``video3dcnn train``: the per-epoch metric line (``metric_line``), the per-epoch checkpoint
(``checkpoints``) and step progress (for the multi-host watchdog of ``distribute``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
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


class Progress(keras.callbacks.Callback):
    """Tell the multi-host watchdog that the job moves: ``starting(loop)`` when a train, test or predict loop
    begins, ``notify()`` after each of its steps and every epoch."""

    def __init__(self, notify: Callable[[], None], starting: Callable[[str], None]) -> None:
        super().__init__()
        self.notify = notify
        self.starting = starting

    def on_train_begin(self, logs: Mapping | None = None) -> None:
        self.starting("train")

    def on_test_begin(self, logs: Mapping | None = None) -> None:
        self.starting("test")

    def on_predict_begin(self, logs: Mapping | None = None) -> None:
        self.starting("predict")

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self.notify()

    def on_test_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self.notify()

    def on_predict_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self.notify()

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self.notify()


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
        scope: a context manager factory the saving runs in (``Placement.solo`` in a multi-replica job).
    """

    def __init__(self, directory: Path, host: str, history: Mapping[str, list] | None = None, keep: int = 2,
                 scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.host = host
        self.history = {key: list(values) for key, values in (history or {}).items()}
        self.keep = keep
        self.scope = scope

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self.history.setdefault("epoch", []).append(epoch + 1)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        with self.scope():
            checkpoints.save(self.model, self.directory, self.host, epoch + 1, self.history)
        checkpoints.prune(self.directory, self.host, self.keep)
