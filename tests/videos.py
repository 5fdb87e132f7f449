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
from collections.abc import Callable
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
    "vp9": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-b:v", "0", "-crf", "30", "-deadline", "realtime"],
    "mjpeg": ["-c:v", "mjpeg", "-q:v", "3"],
    "hevc": ["-c:v", "libx265", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-x265-params", "log-level=error"],
    "mpeg2": ["-c:v", "mpeg2video", "-q:v", "3"],
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
    from video3dcnn.config import DEFAULT_MAX_PIXELS
    from video3dcnn.decoding.video import _decode_sequential

    full = _decode_sequential(path, spec, None, DEFAULT_MAX_PIXELS)
    assert np.array_equal(fast.clips, full.clips)  # bit-identical, not merely close
    assert np.array_equal(fast.frame_indices, full.frame_indices)
    assert fast.num_frames == full.num_frames


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg of imageio-ffmpeg quietly."""
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


@dataclass(frozen=True)
class Kind:
    """One kind of test video (``KINDS``): how it is made and what decoding it must do.

    Attributes:
        make: writes the video into a directory, from the video of kind ``source`` when there is one.
        source: the kind this one is made from (copied, cut, patched), or None.
        intact: every byte as written (not cut short): decoding must then give OpenCV 4.12's frames.
        runs: the keyframe-run shortcut applies (False: it must decline, and one sequential pass decodes).
        turns: quarter turns of display rotation (the frames then no longer read as their index).
    """

    make: Callable[[Path, Path | None], Path]
    source: str | None = None
    intact: bool = True
    runs: bool = True
    turns: int = 0


KIND_FRAMES, KIND_HEIGHT, KIND_WIDTH = 60, 48, 64


def _encoded(suffix: str, codec: str, gop: int | None = 12, extra: tuple[str, ...] = ()) -> Callable:
    def make(directory: Path, source: Path | None) -> Path:
        frames = [index_frame(i, KIND_HEIGHT, KIND_WIDTH) for i in range(KIND_FRAMES)]
        return write_frames(directory / f"video{suffix}", frames, codec=codec, gop=gop, extra_args=list(extra))

    return make


def _copied(suffix: str, before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> Callable:
    """A stream copy with ffmpeg options ``before`` and ``after`` the input (display rotation, a start time, ...)."""

    def make(directory: Path, source: Path | None) -> Path:
        path = directory / f"copy{suffix}"
        ffmpeg(*before, "-i", str(source), "-c", "copy", *after, str(path))
        return path

    return make


def _cut(fraction: float) -> Callable:
    """The first ``fraction`` of the bytes: an incomplete download."""

    def make(directory: Path, source: Path | None) -> Path:
        path = directory / f"cut{source.suffix}"
        path.write_bytes(source.read_bytes()[: int(source.stat().st_size * fraction)])
        return path

    return make


def _avi_claiming(count: int) -> Callable:
    """An AVI file whose headers (``avih`` total frames, ``strh`` length) claim ``count`` frames."""

    def make(directory: Path, source: Path | None) -> Path:
        data = bytearray(source.read_bytes())
        avih, strh = data.index(b"avih") + 8, data.index(b"strh") + 8
        data[avih + 16 : avih + 20] = count.to_bytes(4, "little")  # dwTotalFrames
        data[strh + 32 : strh + 36] = count.to_bytes(4, "little")  # dwLength
        path = directory / f"claims-{count}.avi"
        path.write_bytes(bytes(data))
        return path

    return make


X264_OPEN_GOP = ("-x264-params", "open-gop=1:keyint=12:min-keyint=12:scenecut=0")
INTERLACED = ("-x264-params", "interlaced=1")
KINDS: dict[str, Kind] = {
    "h264-mp4": Kind(_encoded(".mp4", "h264")),
    "h264-long-gop-mp4": Kind(_encoded(".mp4", "h264", 250)),
    "h264-faststart-mp4": Kind(_copied(".mp4", after=("-movflags", "+faststart")), "h264-mp4"),
    "h264-mov": Kind(_encoded(".mov", "h264")),
    "h264-mkv": Kind(_encoded(".mkv", "h264")),
    "h264-ts": Kind(_encoded(".ts", "h264")),
    "h264-avi": Kind(_encoded(".avi", "h264"), runs=False),  # AVI has no times: FFmpeg guesses, wrongly here
    "h264-open-gop-mp4": Kind(_encoded(".mp4", "h264", None, X264_OPEN_GOP)),
    "h264-open-gop-mkv": Kind(_encoded(".mkv", "h264", None, X264_OPEN_GOP)),
    "h264-interlaced-mp4": Kind(_encoded(".mp4", "h264", 12, INTERLACED)),
    "h264-interlaced-mkv": Kind(_encoded(".mkv", "h264", 12, INTERLACED)),
    "h264-interlaced-ts": Kind(_encoded(".ts", "h264", 12, INTERLACED)),
    "h264-bt709-full-range-mp4": Kind(_encoded(".mp4", "h264", 12, ("-colorspace", "bt709", "-color_range", "pc"))),
    "h264-rotated-mp4": Kind(_copied(".mp4", before=("-display_rotation", "90")), "h264-mp4", turns=1),
    "hevc-mp4": Kind(_encoded(".mp4", "hevc")),
    "hevc-mkv": Kind(_encoded(".mkv", "hevc")),
    "hevc-10-bit-mkv": Kind(_encoded(".mkv", "hevc", 12, ("-pix_fmt", "yuv420p10le"))),
    "h264-444-mp4": Kind(_encoded(".mp4", "h264", 12, ("-pix_fmt", "yuv444p"))),
    "vp9-webm": Kind(_encoded(".webm", "vp9")),
    "mpeg4-avi": Kind(_encoded(".avi", "mpeg4")),
    "mpeg4-bframes-avi": Kind(_encoded(".avi", "mpeg4", 12, ("-bf", "2"))),
    "mpeg4-bframes-mp4": Kind(_encoded(".mp4", "mpeg4", 12, ("-bf", "2"))),
    "mpeg4-rotated-mp4": Kind(_copied(".mp4", before=("-display_rotation", "-90")), "mpeg4-bframes-mp4", turns=3),
    "xvid-avi": Kind(_encoded(".avi", "xvid")),
    "mp4v-mp4": Kind(_encoded(".mp4", "mp4v")),
    "mjpg-avi": Kind(_encoded(".avi", "mjpg")),
    "mjpeg-mov": Kind(_encoded(".mov", "mjpeg")),
    "mpeg2-ts": Kind(_encoded(".ts", "mpeg2")),
    "mpeg1-raw-stream": Kind(_encoded(".m1v", "mpeg2", 12, ("-c:v", "mpeg1video", "-f", "mpeg1video"))),
    "avi-claiming-more-frames": Kind(_avi_claiming(10 * KIND_FRAMES), "mpeg4-bframes-avi"),
    "avi-claiming-fewer-frames": Kind(_avi_claiming(KIND_FRAMES // 3), "mpeg4-avi"),
    "mp4-edit-list-hiding-frames": Kind(_copied(".mp4", before=("-ss", "0.5")), "h264-mp4", runs=False),
    "avi-cut-short": Kind(_cut(0.75), "mpeg4-avi", intact=False, runs=False),  # its last packet: marked corrupt
    "mp4-cut-short": Kind(_cut(0.75), "h264-faststart-mp4", intact=False, runs=False),
    "mkv-cut-short": Kind(_cut(0.75), "h264-mkv", intact=False),
    "ts-cut-short": Kind(_cut(0.75), "h264-ts", intact=False),
}


def write_kinds(directory: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write the ``KINDS`` named (default: all), each in a folder of its own; the kinds they are made from too."""
    made: dict[str, Path] = {}

    def write(name: str) -> Path:
        if name not in made:
            kind = KINDS[name]
            source = write(kind.source) if kind.source else None
            folder = directory / name
            folder.mkdir(parents=True, exist_ok=True)
            made[name] = kind.make(folder, source)
        return made[name]

    for name in names or list(KINDS):
        write(name)
    return made
