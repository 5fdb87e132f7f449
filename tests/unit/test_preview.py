"""preview.png: one row per class, frames in clip order, colours as the model sees them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from video3dcnn.preview import (
    DISPLAY_HEIGHT,
    LABEL_WIDTH,
    MAX_CLASSES,
    MAX_PIXELS,
    render_preview,
    shown_classes,
    thumbnail,
    write_preview,
)


def solid_clip(rgb: tuple[int, int, int], frames: int = 3, size: int = 8) -> np.ndarray:
    clip = np.zeros((frames, size, size, 3), np.uint8)
    clip[...] = rgb
    return clip


def test_one_row_per_class_in_class_order_with_rgb_colours(tmp_path: Path) -> None:
    clips = {"red": [solid_clip((255, 0, 0))], "blue": [solid_clip((0, 0, 255)), solid_clip((0, 0, 255))]}
    image = render_preview(["blue", "empty", "red"], clips)
    scale = 64 // 8
    row = 8 * scale
    assert image.shape[0] == 3 * row + 2 * 4  # three rows, two gaps
    assert tuple(image[row // 2, LABEL_WIDTH + 2]) == (0, 0, 255)  # first row: blue
    assert tuple(image[2 * (row + 4) + row // 2, LABEL_WIDTH + 2]) == (255, 0, 0)  # third row: red
    assert np.all(image[row + 4 + row // 2, LABEL_WIDTH:] == 255)  # a class without clips: an empty row
    strip = 3 * 8 * scale  # frames x width x scale
    assert image.shape[1] == LABEL_WIDTH + 2 * (strip + 4)  # as wide as the fullest class (blue, two clips)
    path = write_preview(tmp_path / "preview.png", ["blue", "empty", "red"], clips)
    stored = cv2.imread(str(path))  # cv2 reads BGR: the file holds true colours
    assert tuple(stored[row // 2, LABEL_WIDTH + 2]) == (255, 0, 0)


def test_frames_appear_left_to_right_in_clip_order() -> None:
    clip = np.stack([np.full((4, 4, 1), value, np.uint8) for value in (10, 20, 30)])  # gray
    image = render_preview(["a"], {"a": [clip]})
    scale = 64 // 4
    assert [int(image[2, LABEL_WIDTH + t * 4 * scale + 1, 0]) for t in range(3)] == [10, 20, 30]


def test_large_clips_are_shown_reduced_small_ones_untouched() -> None:
    small = solid_clip((1, 2, 3), frames=2, size=32)
    assert thumbnail(small) is small
    large = np.zeros((2, 128, 96, 1), np.uint8)
    assert thumbnail(large).shape == (2, DISPLAY_HEIGHT, 48, 1)
    assert render_preview(["a"], {"a": [large]}).shape[0] == DISPLAY_HEIGHT


def test_nothing_to_show_writes_nothing(tmp_path: Path) -> None:
    assert write_preview(tmp_path / "preview.png", ["a"], {"a": []}) is None
    assert not (tmp_path / "preview.png").exists()


def test_the_preview_shows_at_most_the_first_max_classes() -> None:
    """3,000 classes made a 125 MB PNG and a 1.8 GB peak: the preview now shows the first MAX_CLASSES."""
    assert shown_classes((15, 32, 32, 3), 3000, per_row=2) == MAX_CLASSES == 128
    assert shown_classes((15, 32, 32, 3), 101, per_row=2) == 101  # UCF101: every class
    assert shown_classes((15, 32, 32, 3), 0, per_row=2) == 0


def test_long_or_wide_clips_show_fewer_classes_within_the_pixel_budget() -> None:
    shown = shown_classes((512, 32, 1024, 3), 3000, per_row=2)  # rows of 2 x 512 frames of 64 x 2048 pixels
    assert shown == 1  # one row is always shown, however large
    shown = shown_classes((64, 112, 112, 3), 3000, per_row=2)
    row_height, row_width = DISPLAY_HEIGHT + 4, LABEL_WIDTH + 2 * (64 * 64 + 4)  # frames reduced to 64x64
    assert shown == MAX_PIXELS // (row_height * row_width) < MAX_CLASSES
    image = render_preview([f"c{i}" for i in range(shown)], {"c0": [np.zeros((64, 112, 112, 3), np.uint8)]})
    assert image.shape[0] * image.shape[1] <= MAX_PIXELS
