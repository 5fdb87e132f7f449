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

``merge_runs`` joins the spans of packets that keyframe-aware decoding (``decoding.video``) must decode into runs.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def merge_runs(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge inclusive ``(start, stop)`` spans of packets to decode into runs, in decoding order.

    A span joins the run before it when it starts at most one packet after that run's end: continuing the run costs no
    more than restarting at the span's own keyframe.
    """
    runs: list[list[int]] = []
    for start, stop in sorted(spans):
        if runs and start <= runs[-1][1] + 1:
            runs[-1][1] = max(runs[-1][1], stop)
        else:
            runs.append([start, stop])
    return [(start, stop) for start, stop in runs]
