"""The per-epoch metric line and the SageMaker metric_definitions regexes that parse it agree."""

from __future__ import annotations

import re
import subprocess
import sys

from video3dcnn.metric_line import METRIC_DEFINITIONS, format_metric_line


def test_metric_line_format_and_regexes_agree():
    line = format_metric_line(3, {"loss": 0.41, "accuracy": 0.88, "val_loss": 0.52, "val_accuracy": 0.83, "x": 1})
    assert line == "epoch=3 loss=0.4100 accuracy=0.8800 val_loss=0.5200 val_accuracy=0.8300;"
    logged = f"2025-01-01 00:00:00 video3dcnn.callbacks INFO {line} time=1.0s clips_per_second=9.0"
    found = {d["Name"]: float(re.search(d["Regex"], logged).group(1)) for d in METRIC_DEFINITIONS}
    assert found == {"train:loss": 0.41, "train:accuracy": 0.88, "validation:loss": 0.52,
                     "validation:accuracy": 0.83}


def test_metric_regexes_ignore_keras_progress_lines():
    keras_line = "12/12 - 1s - 50ms/step - accuracy: 0.5000 - loss: 0.7000 - val_accuracy: 0.2 - val_loss: 0.9"
    assert all(re.search(d["Regex"], keras_line) is None for d in METRIC_DEFINITIONS)


def test_training_only_metric_line_has_no_validation_values():
    line = format_metric_line(1, {"loss": 1.5, "accuracy": 0.25})
    assert re.search(METRIC_DEFINITIONS[3]["Regex"], line) is None
    assert re.search(METRIC_DEFINITIONS[0]["Regex"], line).group(1) == "1.5000"


def test_importing_the_metric_line_loads_no_keras():
    """`video3dcnn launch` sends METRIC_DEFINITIONS with only the aws extra installed."""
    code = "import sys, video3dcnn.metric_line; print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
