"""Figures written next to the metrics: ``training_curves.png`` and ``confusion_matrix.png``.

matplotlib runs headless (Agg backend, set on the figure's own canvas, so no display and no global backend switch).
Files are written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from video3dcnn.files import atomic_path

TRAINING_CURVES = "training_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight")
    return path


def plot_training_curves(history: Mapping[str, Sequence[float]], path: Path) -> Path:
    """Loss and accuracy per epoch, training and validation, side by side.

    Args:
        history: metric name -> one value per epoch (Keras ``History.history`` plus ``epoch`` if present).
        path: the PNG to write.
    """
    figure = _new_figure(10, 4)
    epochs = list(history.get("epoch") or range(1, len(history.get("loss", [])) + 1))
    for position, metric in enumerate(("loss", "accuracy"), start=1):
        axes = figure.add_subplot(1, 2, position)
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if history.get(key):
                axes.plot(epochs[: len(history[key])], history[key], marker="o", markersize=3, label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend()
    return _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path) -> Path:
    """The confusion matrix as a heat map with counts (rows: true class, columns: predicted)."""
    matrix = np.asarray(matrix)
    side = max(4.0, 0.6 * len(classes) + 2)
    figure = _new_figure(side + 1, side)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046)
    ticks = np.arange(len(classes))
    axes.set_xticks(ticks, labels=classes, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=classes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if len(classes) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, col), value in np.ndenumerate(matrix):
            colour = "white" if value > threshold else "black"
            axes.text(col, row, str(value), ha="center", va="center", color=colour, fontsize=8)
    return _save(figure, path)
