"""Discovery and labels: class folders, UCF101 names (HandStandPushups quirk), manifest CSV, split, partition."""

from __future__ import annotations

from pathlib import Path

import pytest

from video3dcnn.discovery import (
    discover,
    find_videos,
    in_partition,
    is_validation,
    read_class_list,
    read_manifest_csv,
    stable_fraction,
)
from video3dcnn.errors import ConfigError, DataError


def touch(root: Path, *relpaths: str) -> None:
    """Discovery never opens the files, so empty ones do."""
    for relpath in relpaths:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_find_videos_is_recursive_sorted_and_ignores_hidden_and_other_files(tmp_path: Path) -> None:
    touch(tmp_path, "b/x.MP4", "a/deep/er/y.avi", "a/z.mkv", "top.webm", ".hidden.mp4", ".cache/a.mp4", "a/.x.avi")
    touch(tmp_path, "a/notes.txt", "a/labels.csv", "b/x.mp4.part")
    found = [path.relative_to(tmp_path).as_posix() for path in find_videos(tmp_path)]
    assert found == ["a/deep/er/y.avi", "a/z.mkv", "b/x.MP4", "top.webm"]
    assert [p.name for p in find_videos(tmp_path, extensions=("webm", ".MKV"))] == ["z.mkv", "top.webm"]


def test_class_folders(tmp_path: Path) -> None:
    touch(tmp_path, "Walk/1.mp4", "Walk/sub/2.mp4", "Run/3.avi", "stray.mp4")
    found = discover(tmp_path)
    assert found.label_source == "folder"
    assert found.classes == ("Run", "Walk")
    assert [(v.relpath, v.label, v.group) for v in found.videos] == [
        ("Run/3.avi", "Run", "Run/3.avi"),
        ("Walk/1.mp4", "Walk", "Walk/1.mp4"),
        ("Walk/sub/2.mp4", "Walk", "Walk/sub/2.mp4"),
    ]
    assert [(s.relpath, s.reason, s.bad) for s in found.skipped] == [("stray.mp4", "not inside a class folder", False)]


def test_ucf101_layout_labels_by_folder_and_groups_by_name(tmp_path: Path) -> None:
    touch(
        tmp_path, "HandstandPushups/v_HandStandPushups_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g01_c02.avi"
    )
    touch(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")
    found = discover(tmp_path)
    assert found.label_source == "folder"
    assert found.classes == ("ApplyEyeMakeup", "HandstandPushups")
    assert [v.group for v in found.videos] == ["ApplyEyeMakeup_g08", "HandstandPushups_g01", "HandstandPushups_g01"]


def test_flat_ucf101_names(tmp_path: Path) -> None:
    touch(tmp_path, "v_Archery_g02_c01.avi", "v_Archery_g02_c03.avi", "v_Biking_g11_c01.avi", "readme.txt")
    found = discover(tmp_path)
    assert found.label_source == "ucf"
    assert found.classes == ("Archery", "Biking")
    assert [(v.label, v.group) for v in found.videos] == [("Archery", "Archery_g02")] * 2 + [("Biking", "Biking_g11")]


def test_ucf_names_match_the_class_list_case_insensitively(tmp_path: Path) -> None:
    touch(tmp_path, "v_HandStandPushups_g01_c01.avi", "v_Archery_g02_c01.avi", "v_YoYo_g03_c01.avi")
    (tmp_path / "classInd.txt").write_text("2 HandstandPushups\n1 Archery\n")  # UCF101's own class file, numbered
    classes = read_class_list(tmp_path / "classInd.txt")
    assert classes == ["Archery", "HandstandPushups"]
    found = discover(tmp_path, label_from="ucf", classes=classes)
    assert found.classes == ("Archery", "HandstandPushups")
    assert [(v.label, v.group) for v in found.videos] == [
        ("Archery", "Archery_g02"),
        ("HandstandPushups", "HandstandPushups_g01"),
    ]
    assert [(s.relpath, s.reason) for s in found.skipped] == [
        ("v_YoYo_g03_c01.avi", "class 'YoYo' is not in the --classes list")
    ]


def test_mixed_spellings_become_one_class_spelled_as_most_files_spell_it(tmp_path: Path) -> None:
    touch(
        tmp_path, "v_HandStandPushups_g01_c01.avi", "v_HandStandPushups_g02_c01.avi", "v_HandstandPushups_g03_c01.avi"
    )
    found = discover(tmp_path)
    assert found.classes == ("HandStandPushups",)
    assert {v.label for v in found.videos} == {"HandStandPushups"}
    assert [v.group for v in found.videos] == [f"HandStandPushups_g0{i}" for i in (1, 2, 3)]


def test_manifest_csv(tmp_path: Path) -> None:
    touch(tmp_path, "clips/a.mp4", "clips/b.mp4", "clips/c.mp4", "clips/unlisted.mp4")
    manifest = tmp_path / "labels.csv"
    manifest.write_text(
        "path,label,group\nclips/a.mp4,jump,g1\n./clips/b.mp4, sit ,g1\n\n"
        "# a comment\nclips/c.mp4,jump\nclips/gone.mp4,sit,g2\n"
    )
    found = discover(tmp_path, manifest=manifest)
    assert found.label_source == "manifest"
    assert found.classes == ("jump", "sit")
    assert [(v.relpath, v.label, v.group) for v in found.videos] == [
        ("clips/a.mp4", "jump", "g1"),
        ("clips/b.mp4", "sit", "g1"),
        ("clips/c.mp4", "jump", "clips/c.mp4"),
    ]
    assert [(s.relpath, s.bad) for s in found.skipped] == [("clips/gone.mp4", True), ("clips/unlisted.mp4", False)]
    assert "missing" in found.skipped[0].reason and "not listed" in found.skipped[1].reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.mp4\n", "line 1: expected path,label"),
        ("a.mp4,x\na.mp4,y\n", "line 2: a.mp4 is listed twice"),
        ("path,label\n", "lists no videos"),
    ],
)
def test_bad_manifest_rows_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        read_manifest_csv(tmp_path / "m.csv")


def test_auto_refuses_a_layout_it_cannot_read(tmp_path: Path) -> None:
    touch(tmp_path, "clip1.mp4", "v_Archery_g01_c01.mp4")
    with pytest.raises(ConfigError, match="class folders .* UCF101 names .* --manifest"):
        discover(tmp_path)


@pytest.mark.parametrize(
    ("label_from", "manifest", "message"),
    [
        ("folder", "m.csv", "--label-from manifest"),
        ("manifest", None, "needs --manifest"),
        ("nonsense", None, "choose one of"),
    ],
)
def test_contradictory_label_options(tmp_path: Path, label_from: str, manifest: str | None, message: str) -> None:
    touch(tmp_path, "A/x.mp4")
    with pytest.raises(ConfigError, match=message):
        discover(tmp_path, label_from=label_from, manifest=tmp_path / manifest if manifest else None)


def test_no_videos_and_no_labelled_videos(tmp_path: Path) -> None:
    touch(tmp_path, "notes.txt")
    with pytest.raises(DataError, match="no video files under .*expected class folders"):
        discover(tmp_path)
    touch(tmp_path, "loose.mp4")
    with pytest.raises(DataError, match="no labelled video.*loose.mp4: not inside a class folder"):
        discover(tmp_path, label_from="folder")


def test_class_list_refuses_names_differing_only_in_case(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("Run\nrun\n")
    with pytest.raises(DataError, match="differ only in case"):
        read_class_list(tmp_path / "classes.txt")


def test_split_is_stable_and_near_the_requested_fraction() -> None:
    groups = [f"Class{c}_g{g:02d}" for c in range(40) for g in range(1, 26)]
    validation = [group for group in groups if is_validation(group, 0.2)]
    assert 0.16 < len(validation) / len(groups) < 0.24
    assert validation == [group for group in groups if is_validation(group, 0.2)]  # deterministic
    assert not any(is_validation(group, 0.0) for group in groups)
    assert set(validation) <= {group for group in groups if is_validation(group, 0.5)}  # nested as the fraction grows
    # SHA-256 based, so the same on every machine and Python version (a regression pin, not a tuned value):
    assert stable_fraction("abc") == int("ba7816bf8f01cfea", 16) / 2**64


def test_partition_gives_each_video_to_exactly_one_instance() -> None:
    paths = [f"Class{i % 7}/video{i}.mp4" for i in range(600)]
    parts = [[path for path in paths if in_partition(path, 3, index)] for index in range(3)]
    assert sorted(path for part in parts for path in part) == sorted(paths)
    assert all(150 < len(part) < 250 for part in parts)
