"""training_curves.png and confusion_matrix.png: headless, atomic, and drawn from what they are given."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from video3dcnn.plots import plot_confusion_matrix, plot_training_curves

PNG = b"\x89PNG\r\n\x1a\n"


def _image(path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG
    return cv2.imread(str(path))


def test_training_curves_are_a_png_with_two_panels(tmp_path):
    history = {"epoch": [3, 4, 5], "loss": [0.9, 0.6, 0.4], "val_loss": [1.0, 0.8, 0.7],
               "accuracy": [0.5, 0.7, 0.9], "val_accuracy": [0.4, 0.6, 0.7]}
    path = plot_training_curves(history, tmp_path / "out" / "training_curves.png")
    image = _image(path)
    assert image.shape[1] > 1.8 * image.shape[0]  # loss and accuracy side by side
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["training_curves.png"]  # no temporaries


def test_training_curves_without_validation_or_epochs(tmp_path):
    assert _image(plot_training_curves({"loss": [1.0, 0.5], "accuracy": [0.4, 0.8]}, tmp_path / "c.png")).size


@pytest.mark.parametrize("classes", [3, 40])  # counts are written into the cells up to 30 classes
def test_confusion_matrix_grows_with_the_class_count(tmp_path, classes):
    matrix = np.eye(classes, dtype=int) * 5
    small = _image(plot_confusion_matrix(np.eye(2, dtype=int), ["a", "b"], tmp_path / "small.png"))
    large = _image(plot_confusion_matrix(matrix, [f"class{i}" for i in range(classes)], tmp_path / "large.png"))
    assert large.shape[0] >= small.shape[0] and large.shape[1] >= small.shape[1]


def _dark_blue_pixels(image: np.ndarray) -> int:
    """Pixels in the dark end of the Blues colour map (BGR), where the largest counts are drawn."""
    return int(((image[..., 0] > 90) & (image[..., 2] < 40)).sum())


def test_the_heat_map_is_drawn_from_the_counts(tmp_path):
    """One full cell paints a block dark blue, two full cells about twice as much."""
    counts = [
        _dark_blue_pixels(_image(plot_confusion_matrix(matrix, ["a", "b"], tmp_path / f"{number}.png")))
        for number, matrix in enumerate(([[0, 0], [0, 0]], [[9, 0], [0, 0]], [[9, 0], [0, 9]]))
    ]
    assert counts[1] > 10 * max(counts[0], 1)
    assert 1.8 < counts[2] / counts[1] < 2.2
