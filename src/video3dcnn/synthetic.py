"""A synthetic, labelled video data set whose classes differ only in motion direction.

Every video shows a textured square gliding over a noisy textured background. Position, size, speed, colours and
textures are random per video, and the trajectory is centred on a random point, so any single frame is equally likely
under every class: only the *motion* tells the classes apart, which is what a 3D CNN must learn (and a 2D model
cannot). Videos are written as real encoded files (MPEG-4 Part 2 in .mp4 through OpenCV) in UCF101's own layout,
``<root>/<Class>/v_<Class>_g<GG>_c<CC>.mp4``, where clips of one group share their background, like UCF101 groups
cut from one source video.

Used for the bundled sample (``local/videos``), the accuracy test and the benchmarks; ``video3dcnn sample`` exposes it.
``write_video`` is also the OpenCV writer of the test videos (``tests/videos.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DIRECTIONS = {"MoveDown": (1, 0), "MoveLeft": (0, -1), "MoveRight": (0, 1), "MoveUp": (-1, 0)}


def _texture(rng: np.random.Generator, height: int, width: int, scale: int) -> np.ndarray:
    """Smooth random RGB texture (float32, 0..255) made by upscaling coarse noise."""
    import cv2

    coarse = rng.uniform(0, 255, (max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255)


def motion_frames(
    direction: str,
    rng: np.random.Generator,
    num_frames: int = 30,
    height: int = 64,
    width: int = 64,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` (uint8 RGB) of a square moving in ``direction`` (a key of DIRECTIONS)."""
    dy, dx = DIRECTIONS[direction]
    if background is None:
        background = _texture(rng, height, width, 8) * 0.6
    side = int(rng.integers(height // 5, height // 3))
    speed = rng.uniform(0.8, 1.4) * min(height, width) / num_frames  # crosses most of the frame
    patch = _texture(rng, side, side, 3) * 0.5 + rng.uniform(80, 128, 3)
    centre_y = rng.uniform(0.35, 0.65) * height
    centre_x = rng.uniform(0.35, 0.65) * width
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        offset = (t - (num_frames - 1) / 2) * speed
        y0 = int(round(centre_y + dy * offset - side / 2))
        x0 = int(round(centre_x + dx * offset - side / 2))
        canvas = background.copy()
        ys, xs = slice(max(y0, 0), min(y0 + side, height)), slice(max(x0, 0), min(x0 + side, width))
        if ys.start < ys.stop and xs.start < xs.stop:
            canvas[ys, xs] = patch[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        canvas += rng.normal(0, 4, canvas.shape)
        frames[t] = canvas.clip(0, 255).astype(np.uint8)
    return frames


def write_video(path: Path, frames: np.ndarray | Sequence[np.ndarray], fps: float = 25.0, fourcc: str = "mp4v") -> Path:
    """Encode RGB frames (each HxWx3 uint8) with OpenCV's ``fourcc`` encoder (default: MPEG-4 Part 2); atomic (temp
    name, then rename). The container follows the extension of ``path``."""
    import cv2

    from video3dcnn.files import atomic_path

    path = Path(path)
    height, width = frames[0].shape[:2]
    with atomic_path(path, suffix=f".tmp{path.suffix}") as tmp:  # OpenCV picks the container by extension
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {fourcc} video to {tmp}")
        try:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
        finally:
            writer.release()
    return path


def write_motion_dataset(
    root: Path,
    groups: int = 6,
    clips_per_group: int = 4,
    num_frames: int = 30,
    height: int = 64,
    width: int = 64,
    seed: int = 0,
    classes: tuple[str, ...] = tuple(DIRECTIONS),
) -> list[Path]:
    """Write ``len(classes) * groups * clips_per_group`` videos under ``root`` and return their paths.

    Clips of one group share a background (like UCF101 groups), so a group-aware split is meaningful.
    """
    rng = np.random.default_rng(seed)
    paths = []
    for name in classes:
        for group in range(1, groups + 1):
            background = _texture(rng, height, width, 8) * 0.6
            for clip in range(1, clips_per_group + 1):
                frames = motion_frames(name, rng, num_frames, height, width, background)
                path = Path(root) / name / f"v_{name}_g{group:02d}_c{clip:02d}.mp4"
                paths.append(write_video(path, frames))
    logger.info("wrote %d videos in %d classes under %s", len(paths), len(classes), root)
    return paths
