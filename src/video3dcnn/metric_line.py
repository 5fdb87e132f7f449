"""The per-epoch metric line of ``video3dcnn train`` and the SageMaker ``metric_definitions`` that parse it.

Every epoch logs one line in a stable format, e.g.::

    epoch=3 loss=0.4100 accuracy=0.8800 val_loss=0.5200 val_accuracy=0.8300; time=4.1s clips_per_second=180.2

``format_metric_line`` writes its ``epoch=... ;`` part (``callbacks.MetricLine`` adds the timing), and
``METRIC_DEFINITIONS`` holds the regexes SageMaker scans the job's log with (``video3dcnn launch`` sends them). The two
live together so that they cannot drift apart. No Keras here: ``launch`` imports this module with only the ``aws``
extra installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
# SageMaker scans the job's log lines with each Regex and records the first capture group as the metric.
METRIC_DEFINITIONS = (
    {"Name": "train:loss", "Regex": rf"epoch=\d+ loss={_NUMBER}"},
    {"Name": "train:accuracy", "Regex": rf"epoch=\d+ .*? accuracy={_NUMBER}"},
    {"Name": "validation:loss", "Regex": rf"epoch=\d+ .*?val_loss={_NUMBER}"},
    {"Name": "validation:accuracy", "Regex": rf"epoch=\d+ .*?val_accuracy={_NUMBER}"},
)


def format_metric_line(epoch: int, logs: Mapping[str, Any]) -> str:
    """``epoch=N loss=... accuracy=... val_loss=... val_accuracy=...;`` with the metrics present in ``logs``."""
    parts = [f"epoch={epoch}"]
    parts += [f"{key}={float(logs[key]):.4f}" for key in METRIC_KEYS if key in logs]
    return " ".join(parts) + ";"
