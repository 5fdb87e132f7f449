"""``preview.png``: the clips exactly as the model sees them, one row per class.

Each row starts with the class name, then shows the frames of a few clips left to right, in clip order, at their
processed size enlarged by pixel repetition (no smoothing), so a colour mix-up (RGB/BGR), a scrambled frame order or a
wrong size is visible at a glance. Clips taller than ``DISPLAY_HEIGHT`` are shown reduced (``thumbnail``) so that a
101-class preview stays a few megabytes. Written with cv2 only, atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from video3dcnn.files import atomic_path

LABEL_WIDTH = 160
GAP = 4
BACKGROUND = 255
DISPLAY_HEIGHT = 64


def thumbnail(clip: np.ndarray) -> np.ndarray:
    """``clip`` itself when at most ``DISPLAY_HEIGHT`` pixels high, else its frames reduced to that height."""
    height, width = clip.shape[1:3]
    if height <= DISPLAY_HEIGHT:
        return clip
    size = (max(1, round(width * DISPLAY_HEIGHT / height)), DISPLAY_HEIGHT)
    frames = [
        cv2.resize(frame, size, interpolation=cv2.INTER_AREA).reshape(DISPLAY_HEIGHT, size[0], -1) for frame in clip
    ]
    return np.stack(frames)


def _scale_for(height: int) -> int:
    """Enlarge small clips to about ``DISPLAY_HEIGHT`` pixels high by an integer factor."""
    return max(1, DISPLAY_HEIGHT // max(height, 1))


def _clip_strip(clip: np.ndarray, scale: int) -> np.ndarray:
    """Frames ``[T, H, W, C]`` side by side as one RGB image, enlarged ``scale`` times."""
    frames = clip if clip.shape[-1] == 3 else np.repeat(clip, 3, axis=-1)
    strip = np.concatenate(list(frames), axis=1)
    return np.repeat(np.repeat(strip, scale, axis=0), scale, axis=1)


def _row(name: str, clips: Sequence[np.ndarray], shape: tuple[int, ...], per_row: int, scale: int) -> np.ndarray:
    """One class: its name, then up to ``per_row`` clips separated by a gap."""
    frames, height, width = shape[0], shape[1], shape[2]
    strip_width = frames * width * scale
    row = np.full((height * scale, LABEL_WIDTH + per_row * (strip_width + GAP), 3), BACKGROUND, np.uint8)
    for position, clip in enumerate(clips[:per_row]):
        left = LABEL_WIDTH + position * (strip_width + GAP)
        row[:, left : left + strip_width] = _clip_strip(clip, scale)
    cv2.putText(row, name[:18], (4, min(row.shape[0] - 4, 20)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return row


def render_preview(
    classes: Sequence[str], clips_by_class: Mapping[str, Sequence[np.ndarray]], per_row: int | None = None
) -> np.ndarray:
    """The preview image (RGB uint8): one row per class in class order; classes without clips get an empty row.

    Args:
        classes: class names, in label order.
        clips_by_class: a few clips ``[T, H, W, C]`` (uint8, RGB or gray) per class name.
        per_row: clips shown per class (default: as many as the fullest class has, so no empty columns).
    """
    clips_by_class = {name: [thumbnail(clip) for clip in clips] for name, clips in clips_by_class.items()}
    per_row = per_row or max(len(clips) for clips in clips_by_class.values())
    sample = next(clip for clips in clips_by_class.values() for clip in clips)
    scale = _scale_for(sample.shape[1])
    rows = [_row(name, list(clips_by_class.get(name, [])), sample.shape, per_row, scale) for name in classes]
    separator = np.full((GAP, rows[0].shape[1], 3), BACKGROUND, np.uint8)
    stacked = [part for row in rows for part in (row, separator)][:-1]
    return np.concatenate(stacked, axis=0)


def write_preview(
    path: Path, classes: Sequence[str], clips_by_class: Mapping[str, Sequence[np.ndarray]]
) -> Path | None:
    """Render the preview and write it as PNG to ``path`` atomically; None when there is no clip to show."""
    if not any(len(clips) for clips in clips_by_class.values()):
        return None
    image = render_preview(classes, clips_by_class)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the preview as PNG")
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return Path(path)
