"""The under-training check: which metrics were still improving at the last epoch, in the log and metrics.json."""

from __future__ import annotations

import logging

import pytest

from video3dcnn.convergence import still_improving, tail_length, warn_if_still_improving

RISING = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95]
FLAT = [0.2, 0.6, 0.9, 0.97, 0.98, 0.98, 0.975, 0.98, 0.98, 0.98]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ({"accuracy": RISING}, ["accuracy"]),
        ({"accuracy": FLAT}, []),  # 0.98 at the end does not beat the earlier 0.98 by 0.01
        ({"accuracy": FLAT, "val_loss": [2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7, 0.65, 0.6, 0.5]}, ["val_loss"]),
        ({"accuracy": RISING, "val_loss": [2.0, 1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]}, ["accuracy"]),
        ({"val_loss": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], "accuracy": RISING},
         ["accuracy", "val_loss"]),
        ({"val_loss": [1.0, 0.1, 0.01, 0.004, 0.004, 0.003, 0.003, 0.003, 0.002, 0.002]}, []),  # tiny gains at ~0
        ({"accuracy": [0.1, 0.5, 0.9]}, []),  # too few epochs to tell
        ({}, []),
    ],
)
def test_still_improving(history, expected):
    assert still_improving(history) == expected


def test_the_tail_is_a_fifth_of_the_epochs_and_at_least_two():
    assert [tail_length(n) for n in (4, 10, 20, 60)] == [2, 2, 4, 12]


def test_a_warning_names_the_metric_and_the_epochs(caplog):
    with caplog.at_level(logging.WARNING, logger="video3dcnn.convergence"):
        assert warn_if_still_improving({"accuracy": RISING}) == ["accuracy"]
        assert warn_if_still_improving({"accuracy": FLAT}) == []
    (record,) = caplog.records
    assert "training accuracy still improving over the last 2 of 10 epochs" in record.getMessage()
    assert "--epochs" in record.getMessage()
