"""The content type a file is sent as, from its name."""

from __future__ import annotations

import pytest

from video3dcnn.content_types import content_type_for


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a/clip.mp4", "video/mp4"),
        ("clip.M4V", "video/mp4"),
        ("v_Run_g01_c01.avi", "video/x-msvideo"),
        ("phone.MOV", "video/quicktime"),
        ("clip.mkv", "video/x-matroska"),
        ("clip.webm", "video/webm"),
        ("clips.npy", "application/x-npy"),
        ("broadcast.ts", "application/octet-stream"),
        ("no_suffix", "application/octet-stream"),
    ],
)
def test_content_type_for_a_file_name(name, expected):
    assert content_type_for(name) == expected
