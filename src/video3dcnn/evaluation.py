"""Scoring a model on labelled clips: its predictions over a loader, and classification metrics in pure numpy.

``predict_loader`` runs a model over every batch of a labelled loader (``train``'s validation report, ``evaluate`` on
shards). ``evaluate_predictions`` turns true labels and predicted probabilities into the report that ``train`` and
``evaluate`` write as ``metrics.json``: accuracy, per-class precision/recall/F1/support and the confusion matrix
(rows = true class, columns = predicted class). No I/O and no Keras import here: the model and the loader come in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def predict_loader(model, loader) -> tuple[np.ndarray, np.ndarray]:
    """True labels and predicted probabilities for every batch of a ``data.ClipLoader`` (in loader order)."""
    labels, probabilities = [], []
    for index in range(len(loader)):
        clips, batch_labels = loader[index]
        probabilities.append(np.asarray(model.predict_on_batch(clips)))
        labels.append(batch_labels)
    if not labels:
        return np.zeros(0, np.int32), np.zeros((0, model.outputs[0].shape[-1]), np.float32)
    return np.concatenate(labels), np.concatenate(probabilities)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[num_classes, num_classes]``: entry ``[t, p]`` = clips of true class t predicted as p."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of every class from a confusion matrix."""
    correct = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision, recall = _ratio(correct, predicted), _ratio(correct, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def evaluate_predictions(
    y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """The evaluation report of ``probabilities`` ``[N, num_classes]`` against ``y_true`` ``[N]``.

    Returns:
        A JSON-friendly dict: ``count``, ``accuracy``, ``top{k}_accuracy`` (k=2,3 where meaningful), ``macro_f1``,
        ``per_class`` (name -> precision, recall, f1, support), ``classes`` and ``confusion_matrix`` (lists).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, np.int64)
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    scores = per_class_scores(matrix)
    report: dict[str, Any] = {"count": int(len(y_true)), "accuracy": accuracy(y_true, y_pred)}
    for k in (2, 3):
        if k < len(classes):
            report[f"top{k}_accuracy"] = top_k_accuracy(y_true, probabilities, k)
    present = scores["support"] > 0
    report["macro_f1"] = float(scores["f1"][present].mean()) if present.any() else 0.0
    report["per_class"] = {
        name: {key: (int(values[i]) if key == "support" else float(values[i])) for key, values in scores.items()}
        for i, name in enumerate(classes)
    }
    report["classes"] = list(classes)
    report["confusion_matrix"] = matrix.tolist()
    return report


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of equal labels (0.0 for no samples)."""
    y_true = np.asarray(y_true)
    return float((y_true == np.asarray(y_pred)).mean()) if len(y_true) else 0.0


def top_k_accuracy(y_true: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Fraction of samples whose true label is among the ``k`` most probable classes."""
    if not len(y_true):
        return 0.0
    top = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(y_true)[:, None]).any(axis=1).mean())


def format_report(report: dict[str, Any]) -> str:
    """Plain-text summary: accuracy, a per-class table and the confusion matrix with class names."""
    classes = report["classes"]
    width = max(8, *(len(name) for name in classes))
    lines = [f"accuracy {report['accuracy']:.4f} on {report['count']} samples", ""]
    lines.append(f"{'class':<{width}}  precision  recall  f1      support")
    for name, row in report["per_class"].items():
        lines.append(
            f"{name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  {row['support']:7d}"
        )
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    cell = max(5, *(len(str(v)) for row in report["confusion_matrix"] for v in row))
    lines.append(" " * width + "".join(f" {i:>{cell}}" for i in range(len(classes))))
    for i, (name, row) in enumerate(zip(classes, report["confusion_matrix"])):
        lines.append(f"{name:<{width}}" + "".join(f" {v:>{cell}}" for v in row) + f"   ({i})")
    return "\n".join(lines)
