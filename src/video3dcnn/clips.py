"""Which decoded frames form each clip: pure index arithmetic (no I/O, no cv2).

Frame ``i`` always means the ``i``-th frame a sequential decode produces, counted from 0; ``num_frames`` is the number
of frames that really decode (never a container's claim). Every function returns int32 indices in ``[0, num_frames)``.

Sampling modes (``ClipSpec.sampling``):

- ``uniform``: ``T`` indices spread evenly from the first to the last frame, ``round(x * (n - 1) / (T - 1))`` for
  ``x = 0 .. T-1`` (halves round up; ``T = 1`` takes the middle frame). With ``n = 150, T = 10``:
  ``0 17 33 50 66 83 99 116 132 149``.
- ``head``: the first ``T`` frames.
- ``sliding``: windows ``start + frame_step * arange(T)`` for ``start = 0, clip_stride, 2 * clip_stride, ...`` as long
  as the whole window lies inside the video; one video yields several clips.

Short videos never fail. ``uniform`` repeats indices (``n = 10, T = 15``: ``0 1 1 2 3 3 4 5 5 6 6 7 8 8 9``); ``head``
and a ``sliding`` video too short for one full window give a single clip whose positions past the end repeat the last
frame (``n = 4, T = 6``: ``0 1 2 3 3 3``).

The second half plans keyframe-aware decoding: given the wanted frames and the keyframe positions of a stream in which
frame ``i`` is packet ``i``, ``plan_runs`` lists the shortest runs of frames to decode, each starting at a keyframe.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from video3dcnn.config import ClipSpec


def _check_count(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame to sample from, got {num_frames}")


def uniform_indices(num_frames: int, frames: int) -> np.ndarray:
    """``frames`` indices spread evenly over ``num_frames`` frames, first and last included.

    Args:
        num_frames: frames that really decode (``n >= 1``).
        frames: clip length ``T``.

    Returns:
        int32 array ``[T]``, non-decreasing; repeats values when ``n < T``.
    """
    _check_count(num_frames)
    if frames == 1:
        return np.array([(num_frames - 1) // 2], np.int32)
    x = np.arange(frames, dtype=np.int64)
    span = num_frames - 1
    return ((2 * x * span + (frames - 1)) // (2 * (frames - 1))).astype(np.int32)


def head_indices(num_frames: int, frames: int) -> np.ndarray:
    """The first ``frames`` indices, the last frame repeated when the video is shorter."""
    _check_count(num_frames)
    return np.minimum(np.arange(frames), num_frames - 1).astype(np.int32)


def sliding_indices(num_frames: int, frames: int, frame_step: int = 1, clip_stride: int = 1) -> np.ndarray:
    """Every full window of ``frames`` frames, ``frame_step`` apart, starts ``clip_stride`` apart.

    Returns:
        int32 array ``[K, T]`` with ``K >= 1``. When not even one window fits, the single row is the first window with
        positions past the end mapped onto the last frame.
    """
    _check_count(num_frames)
    offsets = frame_step * np.arange(frames, dtype=np.int64)
    last_start = num_frames - 1 - int(offsets[-1])
    if last_start < 0:
        return np.minimum(offsets, num_frames - 1).astype(np.int32)[None, :]
    starts = np.arange(0, last_start + 1, clip_stride, dtype=np.int64)
    return (starts[:, None] + offsets[None, :]).astype(np.int32)


def clip_indices(spec: ClipSpec, num_frames: int) -> np.ndarray:
    """Frame indices of every clip ``spec`` takes from a video of ``num_frames`` frames: int32 ``[K, T]``."""
    if spec.sampling == "uniform":
        return uniform_indices(num_frames, spec.frames)[None, :]
    if spec.sampling == "head":
        return head_indices(num_frames, spec.frames)[None, :]
    return sliding_indices(num_frames, spec.frames, spec.frame_step, spec.clip_stride)


def wanted_frames(indices: np.ndarray) -> list[int]:
    """The distinct frames ``indices`` refer to, sorted."""
    return sorted({int(i) for i in np.asarray(indices).ravel()})


def plan_runs(targets: Sequence[int], keyframes: Sequence[int]) -> list[tuple[int, int]]:
    """Plan the runs of frames to decode so that every target is decoded exactly.

    A frame can only be decoded after the keyframe before it and every frame in between, so each run starts at a
    keyframe and ends at a target. A target joins the current run when continuing from the run's end costs no more
    than restarting at its own keyframe.

    Args:
        targets: wanted frame indices (any order, duplicates allowed).
        keyframes: indices of keyframes, including 0.

    Returns:
        Inclusive ``(start, stop)`` runs in decoding order, non-overlapping.

    Raises:
        ValueError: no keyframe at or before the first target.
    """
    keys = sorted(set(keyframes))
    runs: list[list[int]] = []
    for target in sorted(set(targets)):
        position = bisect.bisect_right(keys, target) - 1
        if position < 0:
            raise ValueError(f"no keyframe at or before frame {target}")
        if runs and runs[-1][1] >= keys[position] - 1:
            runs[-1][1] = target
        else:
            runs.append([keys[position], target])
    return [(start, stop) for start, stop in runs]


def runs_cost(runs: Sequence[tuple[int, int]]) -> int:
    """Number of frames decoded by ``runs``."""
    return sum(stop - start + 1 for start, stop in runs)
