"""Synthetic test videos whose frames carry their own index, so frame order and sampling are asserted exactly.

Frame ``i`` is a 4x4 grid of flat cells: cells 0..13 hold the bits of ``i`` (white = 1, black = 0, least significant
bit first, row-major), cell 14 is pure red and cell 15 pure blue (RGB). Big flat cells survive lossy codecs and any
downscale to 16x16 or more, so ``decode_index`` recovers ``i`` from a processed clip, and the red/blue cells reveal a
BGR/RGB mix-up or a scrambled layout.

Writers: OpenCV's own encoders (``mjpg`` in .avi, ``mp4v`` in .mp4, ``xvid`` in .avi) and, through the ffmpeg binary of
the ``imageio-ffmpeg`` package, ``h264`` (.mp4/.mkv) and others, with a chosen keyframe interval.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GRID = 4
INDEX_BITS = 14
RED_CELL, BLUE_CELL = 14, 15

OPENCV_CODECS = {"mjpg": ("MJPG", ".avi"), "mp4v": ("mp4v", ".mp4"), "xvid": ("XVID", ".avi")}
FFMPEG_CODECS = {
    "h264": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "18"],
    "mpeg4": ["-c:v", "mpeg4", "-q:v", "3"],
    "vp9": ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "30", "-deadline", "realtime"],
    "mjpeg": ["-c:v", "mjpeg", "-q:v", "3"],
}


def index_frame(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    """The RGB frame (uint8, HxWx3) that encodes ``index``."""
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"index {index} out of range")
    frame = np.zeros((height, width, 3), np.uint8)
    ys = np.linspace(0, height, GRID + 1).astype(int)
    xs = np.linspace(0, width, GRID + 1).astype(int)
    for cell in range(GRID * GRID):
        r, c = divmod(cell, GRID)
        if cell == RED_CELL:
            value = (255, 0, 0)
        elif cell == BLUE_CELL:
            value = (0, 0, 255)
        else:
            value = (255, 255, 255) if (index >> cell) & 1 else (0, 0, 0)
        frame[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = value
    return frame


def _cell_means(frame: np.ndarray) -> np.ndarray:
    """Mean of the central half of each cell: shape (16, C)."""
    frame = frame.reshape(frame.shape[0], frame.shape[1], -1).astype(np.float32)
    height, width = frame.shape[:2]
    ys = np.linspace(0, height, GRID + 1)
    xs = np.linspace(0, width, GRID + 1)
    means = []
    for cell in range(GRID * GRID):
        r, c = divmod(cell, GRID)
        y0, y1 = ys[r], ys[r + 1]
        x0, x1 = xs[c], xs[c + 1]
        qy, qx = (y1 - y0) / 4, (x1 - x0) / 4
        patch = frame[int(round(y0 + qy)) : int(round(y1 - qy)), int(round(x0 + qx)) : int(round(x1 - qx))]
        means.append(patch.reshape(-1, frame.shape[2]).mean(axis=0))
    return np.stack(means)


def decode_index(frame: np.ndarray) -> int:
    """Recover the index from an RGB (H,W,3) or gray (H,W) / (H,W,1) frame."""
    means = _cell_means(frame).mean(axis=1)
    return sum(1 << cell for cell in range(INDEX_BITS) if means[cell] > 127)


def is_rgb(frame: np.ndarray) -> bool:
    """True when the red cell is red and the blue cell blue in channel order RGB (False for BGR)."""
    means = _cell_means(frame)
    red, blue = means[RED_CELL], means[BLUE_CELL]
    return bool(red[0] > 127 > red[2] and blue[2] > 127 > blue[0])


def decode_clip(clip: np.ndarray) -> list[int]:
    """Indices of every frame of a ``[T, H, W, C]`` clip."""
    return [decode_index(frame) for frame in clip]


@dataclass(frozen=True)
class IndexVideo:
    """A written test video and what it holds."""

    path: Path
    num_frames: int
    fps: float
    height: int
    width: int


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped by imageio-ffmpeg (a dev dependency)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def write_frames(
    path: Path,
    frames: np.ndarray | list[np.ndarray],
    fps: float = 25.0,
    codec: str = "mjpg",
    gop: int | None = None,
    extra_args: list[str] | None = None,
) -> Path:
    """Encode RGB frames (each HxWx3 uint8) into ``path`` with ``codec``.

    Args:
        codec: one of OPENCV_CODECS (written by cv2.VideoWriter) or FFMPEG_CODECS (written by ffmpeg).
        gop: keyframe interval for ffmpeg codecs (None: the encoder's default).
        extra_args: more ffmpeg output options (e.g. ``["-metadata:s:v", "rotate=90"]``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    height, width = frames[0].shape[:2]
    if codec in OPENCV_CODECS:
        from video3dcnn.synthetic import write_video

        return write_video(path, frames, fps, fourcc=OPENCV_CODECS[codec][0])
    args = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
    args += ["-r", str(fps), "-i", "-", *FFMPEG_CODECS[codec]]
    if gop is not None:
        args += ["-g", str(gop), "-keyint_min", str(gop)]
    args += [*(extra_args or []), str(path)]
    subprocess.run(args, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)
    return path


def write_index_video(
    path: Path,
    num_frames: int,
    codec: str = "mjpg",
    fps: float = 25.0,
    height: int = 96,
    width: int = 128,
    gop: int | None = None,
) -> IndexVideo:
    """Write a video whose frame ``i`` encodes ``i`` (see ``index_frame``) and describe it."""
    frames = [index_frame(i, height, width) for i in range(num_frames)]
    write_frames(path, frames, fps=fps, codec=codec, gop=gop)
    return IndexVideo(Path(path), num_frames, fps, height, width)


# Clip specs under which a decoding shortcut must give exactly what a sequential pass gives: one clip over the whole
# video, and several overlapping windows.
SHORTCUT_SPECS = {
    "uniform": {"frames": 8, "height": 32, "width": 32},
    "sliding": {"frames": 3, "height": 24, "width": 40, "sampling": "sliding", "frame_step": 4, "clip_stride": 20},
}


def assert_same_as_sequential(fast, path: Path, spec) -> None:
    """``fast`` (a shortcut's ``DecodedVideo``) is bit-identical to one sequential pass over ``path``."""
    from video3dcnn.video import _decode_sequential

    full = _decode_sequential(path, spec, None)
    assert np.array_equal(fast.clips, full.clips)  # bit-identical, not merely close
    assert np.array_equal(fast.frame_indices, full.frame_indices)
    assert fast.num_frames == full.num_frames
