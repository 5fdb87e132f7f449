"""Predictions over a loader, and the pure metrics (confusion matrix, precision/recall, top-k, the text report),
checked by hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from video3dcnn.evaluation import (
    accuracy,
    confusion_matrix,
    evaluate_predictions,
    format_report,
    per_class_scores,
    predict_loader,
    top_k_accuracy,
)

CLASSES = ("left", "right", "up")
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])


def _one_hot(pred: np.ndarray, n: int = 3) -> np.ndarray:
    probabilities = np.full((len(pred), n), 0.1)
    probabilities[np.arange(len(pred)), pred] = 0.8
    return probabilities


def test_confusion_matrix_rows_are_true_columns_predicted():
    assert confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_per_class_precision_recall_by_hand():
    scores = per_class_scores(confusion_matrix(Y_TRUE, Y_PRED, 3))
    np.testing.assert_allclose(scores["precision"], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(scores["recall"], [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(scores["f1"], [0.8, 0.5, 2 / 3])
    assert scores["support"].tolist() == [3, 2, 1]


def test_class_never_predicted_or_absent_scores_zero_not_nan():
    scores = per_class_scores(confusion_matrix(np.array([0, 0]), np.array([0, 0]), 3))
    assert scores["precision"].tolist() == [1.0, 0.0, 0.0] and scores["recall"].tolist() == [1.0, 0.0, 0.0]


def test_report_values():
    report = evaluate_predictions(Y_TRUE, _one_hot(Y_PRED), CLASSES)
    assert report["count"] == 6 and report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_class"]["right"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert "top2_accuracy" in report and "top3_accuracy" not in report


def test_top_k():
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]])
    truth = np.array([1, 0, 2])
    assert top_k_accuracy(truth, probabilities, 1) == 0.0
    assert top_k_accuracy(truth, probabilities, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(truth, probabilities, 3) == 1.0


def test_empty_input_gives_zeros():
    report = evaluate_predictions(np.zeros(0, int), np.zeros((0, 3)), CLASSES)
    assert report["accuracy"] == 0.0 and report["count"] == 0 and accuracy([], []) == 0.0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)


def test_text_report_names_classes_and_counts():
    text = format_report(evaluate_predictions(Y_TRUE, _one_hot(Y_PRED), CLASSES))
    assert text.startswith("accuracy 0.6667 on 6 samples")
    rows = text.splitlines()
    assert any(row.split()[:4] == ["left", "2", "1", "0"] for row in rows)
    assert any(row.startswith("right") and "0.5000" in row for row in rows)


class _Scorer:
    """A stand-in model: the probability of class k is the clip's first pixel == k (one-hot), batch by batch."""

    outputs = [np.zeros((1, 3))]

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict_on_batch(self, clips: np.ndarray) -> np.ndarray:
        self.batches.append(len(clips))
        return np.eye(3)[clips[:, 0]]


def test_predict_loader_scores_every_batch_in_loader_order():
    clips = np.array([[2], [0], [1], [1], [0]])
    loader = [(clips[:2], np.array([2, 1], np.int32)), (clips[2:], np.array([1, 1, 0], np.int32))]
    model = _Scorer()
    labels, probabilities = predict_loader(model, loader)
    assert model.batches == [2, 3]
    assert labels.tolist() == [2, 1, 1, 1, 0]
    assert probabilities.argmax(axis=1).tolist() == [2, 0, 1, 1, 0]
    labels, probabilities = predict_loader(model, [])
    assert labels.shape == (0,) and probabilities.shape == (0, 3)
