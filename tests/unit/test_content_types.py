"""Content types by file name, and the container a video's first bytes reveal (real files of each kind)."""

from __future__ import annotations

import pytest
from videos import write_index_video

from video3dcnn.content_types import content_type_for, sniff_suffix, video_suffix


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


@pytest.mark.parametrize(
    ("codec", "name", "expected"),
    [("mjpg", "a.avi", ".avi"), ("mp4v", "a.mp4", ".mp4"), ("h264", "a.mkv", ".mkv"), ("h264", "a.mov", ".mov")],
)
def test_sniffed_suffix_of_real_files(tmp_path, codec, name, expected):
    path = write_index_video(tmp_path / name, 4, codec=codec, height=32, width=32).path
    assert sniff_suffix(path.read_bytes()[:12]) == expected


@pytest.mark.parametrize("head", [b"", b"RIFF\0\0\0\0WAVE", b"\x00\x00\x00\x18moov", b"random bytes"])
def test_unknown_bytes_are_not_guessed(head):
    assert sniff_suffix(head) is None


def test_the_bytes_win_over_the_declared_type_and_the_declared_type_over_nothing():
    assert video_suffix("video/mp4", b"RIFF\0\0\0\0AVI LIST") == ".avi"
    assert video_suffix("video/webm", b"\x47\x40\x00\x10") == ".webm"
    assert video_suffix("application/octet-stream", b"\x47\x40\x00\x10") == ""
