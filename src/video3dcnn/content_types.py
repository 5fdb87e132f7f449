"""The content types a serving container accepts and answers with, and how a video's bytes get a file suffix.

Shared by the server (``serving``), which decodes a request body through a temporary file, and by ``launch
transform``, which names the content type of the videos it sends; both only need names, so nothing heavy is imported.
The decoder chooses its exact shortcuts by file suffix (MP4/MOV, AVI), so a body is written under the suffix its
first bytes reveal, or else the one its declared type implies.
"""

from __future__ import annotations

from pathlib import PurePath

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
OCTET_STREAM = "application/octet-stream"

# Declared type -> the file suffix the body is decoded under ("" = let FFmpeg probe the bytes).
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
# QuickTime files carry this major brand in their 'ftyp' box; every other ISO BMFF brand decodes as MP4.
_QUICKTIME_BRAND = b"qt  "
SNIFF_BYTES = 12


def content_type_for(name: str | PurePath) -> str:
    """The content type to send a file as, from its suffix: ``clip.MOV`` -> ``video/quicktime``.

    Videos in other containers (MPEG-TS, WMV, FLV...) are ``application/octet-stream``: the server then recognises
    the container from the bytes.
    """
    return _SUFFIX_TYPES.get(PurePath(name).suffix.lower(), OCTET_STREAM)


def sniff_suffix(head: bytes) -> str | None:
    """The file suffix the first bytes of a video reveal (``.avi``, ``.mp4``, ``.mov``, ``.mkv``), else None.

    RIFF/AVI and ISO BMFF ('ftyp' box first) are what the decoder's shortcuts are for; Matroska and WebM share the
    EBML magic and decode alike.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi"
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:12] == _QUICKTIME_BRAND else ".mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return ".mkv"
    return None


def video_suffix(content_type: str, head: bytes) -> str:
    """The suffix to decode a body of ``content_type`` (one of ``VIDEO_TYPES``) under: sniffed, else declared."""
    sniffed = sniff_suffix(head)
    return sniffed if sniffed is not None else VIDEO_TYPES[content_type]
