"""``preview.png``: the clips exactly as the model sees them, one row per class.

Each row starts with the class name, then shows the frames of a few clips left to right, in clip order, at their
processed size enlarged by pixel repetition (no smoothing), so a colour mix-up (RGB/BGR), a scrambled frame order or a
wrong size is visible at a glance. Clips taller than ``DISPLAY_HEIGHT`` are shown reduced (``thumbnail``) so that a
101-class preview stays a few megabytes.

The image is bounded whatever the data set: it shows at most the first ``MAX_CLASSES`` classes, and fewer when their
rows would exceed ``MAX_PIXELS`` (long or wide clips; at least one class is always shown). ``shown_classes`` says how
many before any clip is collected, so processing keeps clips for those classes only. Written with cv2 only,
atomically.
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
MAX_CLASSES = 128  # UCF101's 101 classes fit; Kinetics-400 shows its first 128
MAX_PIXELS = 64 * 2**20  # 192 MiB of RGB at most, however long or wide the clips


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


def _shown_frame_size(height: int, width: int) -> tuple[int, int]:
    """The size one frame of ``height`` x ``width`` takes in the preview (after ``thumbnail`` and enlarging)."""
    if height > DISPLAY_HEIGHT:
        height, width = DISPLAY_HEIGHT, max(1, round(width * DISPLAY_HEIGHT / height))
    scale = _scale_for(height)
    return height * scale, width * scale


def shown_classes(shape: tuple[int, ...], num_classes: int, per_row: int) -> int:
    """How many classes (the first ones) a preview of clips of ``shape`` ``(T, H, W, C)`` shows: at most
    ``MAX_CLASSES``, and no more than fit in ``MAX_PIXELS`` with ``per_row`` clips a row; at least one."""
    frames, height, width = shape[:3]
    row_height, frame_width = _shown_frame_size(height, width)
    row_pixels = (row_height + GAP) * (LABEL_WIDTH + per_row * (frames * frame_width + GAP))
    return max(0, min(num_classes, MAX_CLASSES, max(1, MAX_PIXELS // row_pixels)))


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
    row_height = sample.shape[1] * scale
    width = LABEL_WIDTH + per_row * (sample.shape[0] * sample.shape[2] * scale + GAP)
    image = np.full((len(classes) * (row_height + GAP) - GAP, width, 3), BACKGROUND, np.uint8)  # filled in place
    for number, name in enumerate(classes):
        top = number * (row_height + GAP)
        image[top : top + row_height] = _row(name, list(clips_by_class.get(name, [])), sample.shape, per_row, scale)
    return image


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
