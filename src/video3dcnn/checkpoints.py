"""Checkpoints for resuming interrupted jobs (managed spot training, a stopped job, ``docker stop``).

SageMaker copies the checkpoint S3 prefix into ``/opt/ml/checkpoints`` when a job (re)starts and uploads what is
written there (https://docs.aws.amazon.com/sagemaker/latest/dg/model-checkpoints.html). One prefix serves all hosts,
so names carry the host: ``checkpoint-<host>-epoch<NNNN>.keras`` (model + optimizer state) after an epoch,
``checkpoint-<host>-epoch<NNNN>-step<NNNNNN>.keras`` in the middle of the next one (``step`` batches of it done: a
time-based checkpoint or a stop), and a ``.json`` beside each (the history of the completed epochs). Both are
written to a temporary name and renamed, the JSON first, so a checkpoint whose model file exists is always complete.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from video3dcnn.errors import DataError
from video3dcnn.files import atomic_path, write_json_atomic

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(?P<host>.+)-epoch(?P<epoch>\d{4,})(?:-step(?P<step>\d{6,}))?\.keras$")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint on disk: the model file, its host, the number of epochs it completed and the batches of the next
    epoch it completed (0 for a checkpoint taken at the end of an epoch)."""

    path: Path
    host: str
    epoch: int
    step: int = 0

    @property
    def position(self) -> tuple[int, int]:
        """``(epoch, step)``: checkpoints order by it."""
        return self.epoch, self.step

    def describe(self) -> str:
        done = f"{self.epoch} epochs done"
        return f"{done} and {self.step} batches of epoch {self.epoch + 1}" if self.step else done

    @property
    def history_path(self) -> Path:
        return self.path.with_suffix(".json")

    def history(self) -> dict[str, list]:
        """The history saved with the checkpoint (empty when its JSON is missing or unreadable)."""
        try:
            return json.loads(self.history_path.read_text(encoding="utf-8"))["history"]
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("no history beside %s (%s); history.csv will start at epoch %d", self.path, exc, self.epoch)
            return {}


def checkpoint_path(directory: Path, host: str, epoch: int, step: int = 0) -> Path:
    """Where the checkpoint of ``host`` after ``epoch`` (1-based) and ``step`` batches of the next epoch goes."""
    middle = f"-step{step:06d}" if step else ""
    return Path(directory) / f"checkpoint-{host}-epoch{epoch:04d}{middle}.keras"


def save_model(model, path: Path) -> Path:
    """``model.save`` to a temporary ``.keras`` name beside ``path``, then rename (no half-written model files)."""
    with atomic_path(path, suffix=".tmp.keras") as tmp:  # Keras picks the format by extension
        model.save(tmp)
    return path


def save(model, directory: Path, host: str, epoch: int, history: Mapping[str, list], step: int = 0) -> Checkpoint:
    """Write the checkpoint of ``host`` after ``epoch`` and ``step`` batches: history JSON first, then the model.

    Raises:
        files.WriteError: the directory cannot be written (a full disk): the message names the file.
    """
    path = checkpoint_path(directory, host, epoch, step)
    write_json_atomic(path.with_suffix(".json"), {"host": host, "epoch": epoch, "step": step, "history": dict(history)})
    save_model(model, path)
    return Checkpoint(path, host, epoch, step)


def list_checkpoints(directory: Path | None) -> list[Checkpoint]:
    """Complete checkpoints in ``directory``, oldest first (by epoch, then host)."""
    if directory is None or not Path(directory).is_dir():
        return []
    found = []
    for path in Path(directory).iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append(Checkpoint(path, match["host"], int(match["epoch"]), int(match["step"] or 0)))
    return sorted(found, key=lambda c: (c.position, c.host))


def latest(directory: Path | None, host: str | None = None) -> Checkpoint | None:
    """The checkpoint furthest on (epochs, then batches), preferring ``host``'s own at equal positions; None when there
    is none."""
    found = list_checkpoints(directory)
    if not found:
        return None
    best = max(c.position for c in found)
    candidates = [c for c in found if c.position == best]
    return next((c for c in candidates if c.host == host), candidates[-1])


def prune(directory: Path, host: str, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints of ``host``."""
    own = [c for c in list_checkpoints(directory) if c.host == host]
    for old in own[: max(len(own) - keep, 0)]:
        old.path.unlink(missing_ok=True)
        old.history_path.unlink(missing_ok=True)


def load(checkpoint: Checkpoint):
    """Load a checkpoint's model, compiled, with its optimizer state.

    Raises:
        DataError: the file cannot be read as a Keras model (e.g. copied in truncated).
    """
    import keras

    try:
        return keras.saving.load_model(checkpoint.path)
    except Exception as exc:  # noqa: BLE001 - zip, h5 and deserialisation errors all mean "unusable checkpoint"
        raise DataError(
            f"cannot resume from checkpoint {checkpoint.path}: {type(exc).__name__}: {exc}; "
            "delete it (or the checkpoint S3 prefix) to start over"
        ) from None
