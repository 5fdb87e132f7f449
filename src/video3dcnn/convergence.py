"""Did training stop too early? A check of the history's last epochs, for the log and ``metrics.json``.

A metric counts as *still improving* when its best value over the last epochs (a fifth of them, at least two) beats
its best value over all the epochs before by more than a tolerance: training accuracy by 0.01, ``val_loss`` by 1 %
of its value and at least 0.01 (so a loss creeping from 0.003 to 0.002 once accuracy is perfect does not count).
Either means more epochs would probably have helped; the benchmark behind this (docs/benchmarks.md) saw held-out
accuracy still rising long after the default epochs when training accuracy was. No Keras here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

logger = logging.getLogger(__name__)

MIN_EPOCHS = 4  # fewer epochs give no "before" to compare with
ACCURACY_GAIN = 0.01
VAL_LOSS_GAIN = 0.01  # relative, and at least this much absolute


def tail_length(epochs: int) -> int:
    """How many last epochs are compared with the ones before: a fifth, at least two."""
    return max(2, epochs // 5)


def _improved(values: Sequence[float], higher_is_better: bool, gain: float) -> bool:
    tail = tail_length(len(values))
    before, last = values[:-tail], values[-tail:]
    if higher_is_better:
        return max(last) > max(before) + gain
    return min(last) < min(before) - max(gain * abs(min(before)), gain)


def still_improving(history: Mapping[str, Sequence[float]]) -> list[str]:
    """The metrics (``accuracy``, ``val_loss``) still improving at the end of ``history``; empty when none.

    Args:
        history: per-epoch values by metric name (Keras' ``History.history``, resumed epochs included).

    Returns:
        The names of the metrics whose last epochs beat the earlier best (see the module docstring); empty with
        fewer than ``MIN_EPOCHS`` epochs or without those metrics.
    """
    found = []
    accuracy, val_loss = list(history.get("accuracy") or []), list(history.get("val_loss") or [])
    if len(accuracy) >= MIN_EPOCHS and _improved(accuracy, True, ACCURACY_GAIN):
        found.append("accuracy")
    if len(val_loss) >= MIN_EPOCHS and _improved(val_loss, False, VAL_LOSS_GAIN):
        found.append("val_loss")
    return found


def warn_if_still_improving(history: Mapping[str, Sequence[float]]) -> list[str]:
    """Log a warning naming the metrics that were still improving at the last epoch; return their names."""
    found = still_improving(history)
    if found:
        epochs = len(history.get("accuracy") or history.get("val_loss"))
        logger.warning(
            "%s still improving over the last %d of %d epochs: the model is probably under-trained; train longer "
            "(--epochs) or let early stopping decide (--early-stopping-patience)",
            " and ".join("training accuracy" if name == "accuracy" else name for name in found),
            tail_length(epochs), epochs,
        )
    return found
