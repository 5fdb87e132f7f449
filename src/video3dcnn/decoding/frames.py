"""One decoded frame -> one clip frame, bit-identical to what OpenCV's reader (opencv-python-headless 4.12) gave.

OpenCV's FFmpeg backend converted the stored picture to BGR24 at its stored size with libswscale, ``SWS_BICUBIC``,
BT.601 coefficients and the range the pixel format implies (full for ``yuvj`` formats), whatever the frame's colour
tags said, and turned it by the display rotation in quarter turns (``CAP_PROP_ORIENTATION_AUTO``). PyAV's conversion
reads the tags (a BT.709 file comes out up to 27 levels apart: the colour arguments override them), converts
interlaced frames field by field and places chroma as tagged (10-bit HEVC differs), so such frames are first copied
into a frame without tags. Then ``resize_frame`` and OpenCV's BGR to RGB (or gray) conversion. Tests compare the
result with OpenCV's own reader on every kind of test video.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from video3dcnn.config import ClipSpec

QUARTER_TURNS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}
# 8-bit 4:2:0 converts at the same size without reading chroma position: only interlacing needs the untagged copy.
PLAIN_FORMATS = frozenset({"yuv420p", "yuvj420p"})


def untagged(frame: av.VideoFrame) -> av.VideoFrame:
    """A copy of ``frame``'s planes in a new frame without colour, chroma-position or interlacing tags."""
    plain = av.VideoFrame(frame.width, frame.height, frame.format.name)
    for source, target in zip(frame.planes, plain.planes):
        if source.line_size == target.line_size:
            target.update(source)
        else:  # differently padded rows: copy the common part of each
            rows = np.frombuffer(source, np.uint8).reshape(-1, source.line_size)
            into = np.frombuffer(target, np.uint8).reshape(-1, target.line_size)
            width = min(source.line_size, target.line_size)
            into[: len(rows), :width] = rows[: len(into), :width]
    return plain


def to_bgr(frame: av.VideoFrame, reformatter: VideoReformatter) -> np.ndarray:
    """The upright BGR picture of ``frame`` (uint8 ``[H, W, 3]``), as OpenCV's FFmpeg backend gave it."""
    colour = {}
    if not frame.format.is_rgb:
        full = frame.format.name.startswith("yuvj")
        colour = {"src_colorspace": "ITU601", "src_color_range": "JPEG" if full else "MPEG"}
    plain = frame if frame.format.name in PLAIN_FORMATS and not frame.interlaced_frame else untagged(frame)
    bgr = reformatter.reformat(plain, format="bgr24", interpolation="BICUBIC", threads=1, **colour).to_ndarray()
    turns = round(frame.rotation / 90) % 4 if frame.rotation % 90 == 0 else 0
    return cv2.rotate(bgr, QUARTER_TURNS[turns]) if turns else bgr


def to_clip_frame(bgr: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """Turn one BGR frame into a clip frame ``[H, W, C]`` (``resize_frame``, then RGB or gray)."""
    small = resize_frame(bgr, spec.width, spec.height)
    if spec.gray:
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def resize_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize ``frame`` to ``(width, height)`` by area averaging, in cheap exact halvings first.

    While both sides are even and at least twice the target, the frame is halved by averaging 2x2 blocks (exact, and
    OpenCV's fastest resize: 0.03 ms for 320x240); ``cv2.INTER_AREA`` then takes it to the target size. The same idea
    as Pillow's ``reducing_gap``: about 4x cheaper than one ``INTER_AREA`` step from 320x240 to 32x32 (0.05 against
    0.2 ms), and equally free of aliasing; pixel values differ from the one-step result by about 2 levels on average
    because the block boundaries of the halvings need not fall on those of the final step.
    """
    while (
        frame.shape[0] >= 2 * height
        and frame.shape[1] >= 2 * width
        and frame.shape[0] % 2 == 0
        and frame.shape[1] % 2 == 0
    ):
        frame = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if frame.shape[:2] == (height, width):
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
