"""Clip index arithmetic: parameter tables, short videos, merging the spans of packets to decode into runs."""

from __future__ import annotations

import numpy as np
import pytest

from video3dcnn.clips import (
    clip_indices,
    head_indices,
    merge_runs,
    sliding_indices,
    uniform_indices,
    wanted_frames,
)
from video3dcnn.config import ClipSpec


@pytest.mark.parametrize(
    ("num_frames", "frames", "expected"),
    [
        (150, 10, [0, 17, 33, 50, 66, 83, 99, 116, 132, 149]),
        (10, 15, [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8, 8, 9]),  # short video: indices repeat
        (15, 15, list(range(15))),
        (1, 4, [0, 0, 0, 0]),
        (2, 3, [0, 1, 1]),  # a half rounds up
        (100, 1, [49]),  # one frame: the middle
        (101, 1, [50]),
        (250, 2, [0, 249]),
    ],
)
def test_uniform_indices(num_frames: int, frames: int, expected: list[int]) -> None:
    indices = uniform_indices(num_frames, frames)
    assert indices.dtype == np.int32
    assert indices.tolist() == expected


@pytest.mark.parametrize("num_frames", [1, 2, 7, 15, 16, 186, 1441, 100_000])
@pytest.mark.parametrize("frames", [1, 8, 15, 16])
def test_uniform_indices_span_exactly_the_frames_that_decode(num_frames: int, frames: int) -> None:
    indices = uniform_indices(num_frames, frames)
    assert len(indices) == frames
    assert np.all(np.diff(indices) >= 0)
    assert indices.min() >= 0 and indices.max() <= num_frames - 1
    if frames > 1:
        assert indices[0] == 0 and indices[-1] == num_frames - 1


@pytest.mark.parametrize(
    ("num_frames", "frames", "expected"),
    [(20, 5, [0, 1, 2, 3, 4]), (4, 6, [0, 1, 2, 3, 3, 3]), (1, 3, [0, 0, 0])],
)
def test_head_indices(num_frames: int, frames: int, expected: list[int]) -> None:
    assert head_indices(num_frames, frames).tolist() == expected


@pytest.mark.parametrize(
    ("num_frames", "frames", "step", "stride", "expected"),
    [
        (10, 4, 1, 4, [[0, 1, 2, 3], [4, 5, 6, 7]]),
        (12, 4, 1, 4, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]),
        (20, 4, 2, 5, [[0, 2, 4, 6], [5, 7, 9, 11], [10, 12, 14, 16]]),
        (7, 3, 3, 1, [[0, 3, 6]]),
        (4, 6, 1, 6, [[0, 1, 2, 3, 3, 3]]),  # too short for one window: one clip, last frame repeated
        (5, 3, 4, 1, [[0, 4, 4]]),
        (6, 2, 1, 1, [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]),  # overlapping windows
    ],
)
def test_sliding_indices(num_frames: int, frames: int, step: int, stride: int, expected: list[list[int]]) -> None:
    assert sliding_indices(num_frames, frames, step, stride).tolist() == expected


def test_clip_indices_dispatches_on_the_spec() -> None:
    assert clip_indices(ClipSpec(frames=3, sampling="uniform"), 9).tolist() == [[0, 4, 8]]
    assert clip_indices(ClipSpec(frames=3, sampling="head"), 9).tolist() == [[0, 1, 2]]
    spec = ClipSpec(frames=3, sampling="sliding", frame_step=2, clip_stride=3)
    assert clip_indices(spec, 9).tolist() == [[0, 2, 4], [3, 5, 7]]


@pytest.mark.parametrize("function", [uniform_indices, head_indices])
def test_zero_frames_is_refused(function) -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        function(0, 4)


def test_wanted_frames_are_distinct_and_sorted() -> None:
    assert wanted_frames(np.array([[4, 1, 1], [9, 4, 0]])) == [0, 1, 4, 9]


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([(0, 0), (12, 18), (36, 36)], [(0, 0), (12, 18), (36, 36)]),
        ([(0, 5), (0, 7)], [(0, 7)]),  # one keyframe: one run
        ([(0, 10), (12, 13)], [(0, 10), (12, 13)]),  # restarting at 12 (2 packets) beats continuing 11..13 (3)
        ([(0, 11), (12, 13)], [(0, 13)]),  # equal cost: continue
        ([(12, 13), (12, 13), (0, 2)], [(0, 2), (12, 13)]),  # unsorted, repeated
        ([(12, 30), (0, 14), (24, 26)], [(0, 30)]),  # overlapping (an open-GOP frame restarts a keyframe earlier)
    ],
)
def test_merge_runs(spans: list[tuple[int, int]], expected: list[tuple[int, int]]) -> None:
    assert merge_runs(spans) == expected
