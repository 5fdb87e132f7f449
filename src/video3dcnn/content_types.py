"""The content types a serving container accepts and answers with, and the content type of a video file's name.

Shared by the server (``serving``), which decodes a request body through a temporary file, and by ``launch
transform``, which names the content type of the videos it sends; both only need names, so nothing heavy is imported.
FFmpeg recognises a container from its bytes, so a video sent under a generic or wrong type still decodes; the
suffix a declared type implies only names the temporary file.
"""

from __future__ import annotations

from pathlib import PurePath

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
OCTET_STREAM = "application/octet-stream"

# Declared type -> the suffix of the temporary file a body is decoded from ("" for bytes of unknown kind).
VIDEO_TYPES = {
    "video/mp4": ".mp4",
    "video/x-msvideo": ".avi",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "video/webm": ".webm",
    OCTET_STREAM: "",
}
REQUEST_TYPES = (*VIDEO_TYPES, NPY)
RESPONSE_TYPES = (JSON, CSV)

_SUFFIX_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".avi": "video/x-msvideo",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".npy": NPY,
}


def content_type_for(name: str | PurePath) -> str:
    """The content type to send a file as, from its suffix: ``clip.MOV`` -> ``video/quicktime``.

    Videos in other containers (MPEG-TS, WMV, FLV...) are ``application/octet-stream``: FFmpeg recognises the
    container from the bytes.
    """
    return _SUFFIX_TYPES.get(PurePath(name).suffix.lower(), OCTET_STREAM)
