"""Video decoding: one video file in, the clips a ``ClipSpec`` takes from it out; used by processing and predict.

``decode_clips(path, spec)`` is the one way a video becomes model input. Decoding goes through PyAV (FFmpeg); the
package holds what FFmpeg cannot tell by itself:

- ``video``: which frames to decode (a packet index, keyframe runs, a sequential fallback), bounds, errors.
- ``frames``: one decoded frame into one clip frame, bit-identical to what OpenCV's reader gave.
- ``mpeg4``: whether an MPEG-4 Part 2 (XviD/DivX) packet holds exactly one frame.
"""

from video3dcnn.decoding.video import FROZEN_WARNING, DecodedVideo, decode_clips, frozen

__all__ = ["FROZEN_WARNING", "DecodedVideo", "decode_clips", "frozen"]
