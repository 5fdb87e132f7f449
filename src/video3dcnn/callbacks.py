"""Keras callbacks of ``video3dcnn train``: the per-epoch metric line (``metric_line``), checkpoints per epoch and per
``checkpoint_minutes`` (``checkpoints``), step progress (for the multi-host watchdog of ``distribute``), the stop at a
batch boundary that SIGTERM asks for (``signals.StopRequest``) and the end of a run whose loss is no longer a number."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import keras

from video3dcnn import checkpoints
from video3dcnn.errors import DataError
from video3dcnn.metric_line import format_metric_line
from video3dcnn.signals import StopRequest

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
    """After every epoch, and at the first batch boundary ``every_seconds`` after the last checkpoint, save the model
    (optimizer state included) and the history of the completed epochs to ``directory``.

    File names carry the host, the completed epochs and, in the middle of an epoch, its completed batches
    (``checkpoint-<host>-epoch0003.keras``, ``checkpoint-<host>-epoch0003-step000120.keras``, each with a ``.json``
    holding the history), so the hosts of a job can share one S3 checkpoint prefix. Only the newest ``keep``
    checkpoints of this host are kept: SageMaker mirrors deletions to S3, which bounds the checkpoint storage.

    Args:
        directory: the checkpoint directory (``/opt/ml/checkpoints`` in a job).
        host: this host's name.
        history: metric name -> values of the epochs before this run (from the checkpoint resumed from).
        keep: how many checkpoints of this host to keep.
        scope: a context manager factory the saving runs in (``Placement.solo`` in a multi-replica job).
        every_seconds: the longest time between two checkpoints (None: only after epochs).
        clock: seconds, monotonic (tests pass a fake one).

    Attributes:
        step_offset: batches of the current epoch done before this ``fit`` (a run resumed in the middle of an epoch).
    """

    def __init__(self, directory: Path, host: str, history: Mapping[str, list] | None = None, keep: int = 2,
                 scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 every_seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.host = host
        self.history = {key: list(values) for key, values in (history or {}).items()}
        self.keep = keep
        self.scope = scope
        self.every_seconds = every_seconds
        self.clock = clock
        self.step_offset = 0
        self._epoch = 0
        self._saved_at = clock()

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        due = self.every_seconds is not None and self.clock() - self._saved_at >= self.every_seconds
        if due and not is_last_batch(self, batch):  # the epoch's own checkpoint follows
            self.save_step(batch)

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        self.history.setdefault("epoch", []).append(epoch + 1)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self._save(epoch + 1, 0)

    def save_step(self, batch: int) -> checkpoints.Checkpoint:
        """Save the model as it is after ``batch`` (0-based, of this ``fit``) of the current epoch."""
        return self._save(self._epoch, self.step_offset + batch + 1)

    def _save(self, epoch: int, step: int) -> checkpoints.Checkpoint:
        started = self.clock()
        with self.scope():
            saved = checkpoints.save(self.model, self.directory, self.host, epoch, self.history, step)
        checkpoints.prune(self.directory, self.host, self.keep)
        self._saved_at = self.clock()
        if step:
            logger.info("checkpoint %s (%s) written in %.1f s", saved.path.name, saved.describe(),
                        self._saved_at - started)
        return saved


def is_last_batch(callback: keras.callbacks.Callback, batch: int) -> bool:
    """Whether ``batch`` (0-based) is the last of the epoch in the ``fit`` that runs ``callback``."""
    steps = (callback.params or {}).get("steps")
    return steps is not None and batch + 1 >= steps


class GracefulStop(keras.callbacks.Callback):
    """Stop training at a batch boundary once SIGTERM asked for it (``signals.StopRequest``), after a checkpoint.

    Every host asks ``placement.agree_stop(requested, batches)`` after each training batch and at the end of each
    epoch (``batches``: training batches done in this run); the answer is the same on every host at the same batch.
    When it says stop, the host with a checkpoint callback saves the model as it is (a mid-epoch checkpoint; at an
    epoch's end that epoch's checkpoint is already written), ``placement.stop_saved()`` lets the other hosts wait for
    it, and every host raises ``signals.Stopped`` with the one-line reason. Put it after the checkpoint callback.

    Args:
        request: the stop request SIGTERM fills in.
        placement: ``distribute.Placement`` (or anything with ``agree_stop`` and ``stop_saved``).
        checkpoint: the checkpoint callback of this host, or None (other hosts, no checkpoint directory).
    """

    def __init__(self, request: StopRequest, placement, checkpoint: EpochCheckpoint | None = None) -> None:
        super().__init__()
        self.request = request
        self.placement = placement
        self.checkpoint = checkpoint
        self.batches = 0

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        self.batches += 1
        # The last batch waits for the epoch's end (validation, then the epoch's checkpoint): a checkpoint holds
        # whole epochs, or part of one, never a whole epoch without its validation.
        if self.placement.agree_stop(self.request.requested, self.batches) and not is_last_batch(self, batch):
            saved = self.checkpoint.save_step(batch) if self.checkpoint is not None else None
            self._stop(f"saved checkpoint {saved.path} ({saved.describe()})" if saved else None)

    def on_epoch_end(self, epoch: int, logs: Mapping | None = None) -> None:
        if self.placement.agree_stop(self.request.requested, self.batches):
            if self.checkpoint is None:
                self._stop(None)
            path = checkpoints.checkpoint_path(self.checkpoint.directory, self.checkpoint.host, epoch + 1)
            self._stop(f"saved checkpoint {path} ({epoch + 1} epochs done)")

    def _stop(self, saved: str | None) -> None:
        self.placement.stop_saved()
        what = saved or "this host writes no checkpoint (only the chief does, if a checkpoint directory is set)"
        if not self.request.requested:  # another host got the signal
            what = f"another host of the job was stopped; {what}"
        raise self.request.stopped(what)


class NonFiniteLoss(keras.callbacks.Callback):
    """End training with a ``DataError`` as soon as the training loss is NaN or infinite (it never recovers, and the
    model would be saved as if trained)."""

    def __init__(self, learning_rate: float) -> None:
        super().__init__()
        self.learning_rate = learning_rate
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Mapping | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Mapping | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise DataError(
                f"the training loss became {float(loss)} at batch {batch + 1} of epoch {self._epoch + 1}: training "
                f"diverged; lower learning_rate (now {self.learning_rate:g}) or check the data for broken clips"
            )
