"""Discovery and labels: class folders (symbolic links too), UCF101 names (HandStandPushups quirk), manifest CSV,
class lists (classInd.txt, byte order marks, encodings, Unicode normal forms), split, partition."""

from __future__ import annotations

import hashlib
import logging
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from video3dcnn.discovery import (
    LabelledVideo,
    discover,
    find_videos,
    in_part,
    is_validation,
    read_class_list,
    read_manifest_csv,
    resolve_label_source,
    stable_fraction,
    validation_groups,
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


def test_avchd_camcorder_files_are_videos(tmp_path: Path) -> None:
    touch(tmp_path, "Walk/00001.MTS", "Walk/00002.m2ts", "Run/00003.mts")
    assert [path.relative_to(tmp_path).as_posix() for path in find_videos(tmp_path)] == [
        "Run/00003.mts",
        "Walk/00001.MTS",
        "Walk/00002.m2ts",
    ]


def symlink(link: Path, target: str) -> None:
    """``link`` -> ``target`` (a folder); skips the test where the system cannot make symbolic links."""
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(target, target_is_directory=True)
    except (OSError, NotImplementedError) as exc:
        pytest.skip(f"no symbolic links here: {exc}")


def test_find_videos_follows_symlinked_folders_once(tmp_path: Path) -> None:
    touch(tmp_path, "full/Walk/w1.mp4", "full/Walk/deep/w2.mp4", "full/Run/r1.mp4", "full/Jump/j1.mp4")
    touch(tmp_path, "full/Zigzag/z1.mp4")
    root = tmp_path / "subset"
    touch(root, "Sit/s1.mp4")
    symlink(root / "Walk", "../full/Walk")
    symlink(root / "Run", str(tmp_path / "full/Run"))
    symlink(root / "Zigzag", "../full/Zigzag")
    symlink(root / ".hidden", "../full/Jump")
    symlink(tmp_path / "full/Walk/deep/loop", "../..")  # back to full/: Walk again (a loop), Run, Jump and Zigzag
    symlink(tmp_path / "full/Walk/self", ".")
    found = [path.relative_to(root).as_posix() for path in find_videos(root)]
    assert found == [
        "Run/r1.mp4",
        "Sit/s1.mp4",
        "Walk/deep/loop/Jump/j1.mp4",  # full/Jump is reached only here
        "Walk/deep/w2.mp4",
        "Walk/w1.mp4",
        "Zigzag/z1.mp4",  # the class folder, not the deeper way in through Walk/deep/loop
    ]
    assert discover(root).classes == ("Run", "Sit", "Walk", "Zigzag")


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


def test_class_list_with_a_byte_order_mark(tmp_path: Path) -> None:
    touch(tmp_path, "Run/a.mp4", "Walk/b.mp4")
    (tmp_path / "classes.txt").write_text("Walk\r\nRun\r\n", encoding="utf-8-sig")  # as Windows Notepad saves it
    classes = read_class_list(tmp_path / "classes.txt")
    assert classes == ["Walk", "Run"]
    assert [video.label for video in discover(tmp_path, classes=classes).videos] == ["Run", "Walk"]


@pytest.mark.parametrize("reader", [read_class_list, read_manifest_csv])
@pytest.mark.parametrize(
    "data",
    [
        "Caf\u00e9/a.mp4,Caf\u00e9\n".encode("latin-1"),
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00b\xee\x9dh^\x01\x00\x00\x90\x04",  # an .xlsx
    ],
    ids=["latin-1", "xlsx"],
)
def test_a_file_that_is_not_utf8_is_a_one_line_data_error(
    tmp_path: Path, reader: Callable[[Path], object], data: bytes
) -> None:
    (tmp_path / "list.csv").write_bytes(data)
    with pytest.raises(DataError, match=r"list\.csv must be UTF-8 text: line 1 holds byte 0x") as caught:
        reader(tmp_path / "list.csv")
    assert "\n" not in str(caught.value)


def test_class_names_match_across_unicode_normal_forms(tmp_path: Path) -> None:
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"  # NFC as typed on most systems, NFD as macOS names folders
    assert unicodedata.normalize("NFC", decomposed) == composed
    touch(tmp_path, f"{decomposed}/a.mp4", f"{composed}/b.mp4", "Tea/c.mp4")
    found = discover(tmp_path)
    assert found.classes == (composed, "Tea")
    assert [(video.label, video.relpath) for video in found.videos] == [
        (composed, f"{decomposed}/a.mp4"),  # the path stays as on disk
        (composed, f"{composed}/b.mp4"),
        ("Tea", "Tea/c.mp4"),
    ]
    (tmp_path / "classes.txt").write_text(f"Tea\n{composed}\n")
    found = discover(tmp_path, classes=read_class_list(tmp_path / "classes.txt"))
    assert found.classes == ("Tea", composed) and len(found.videos) == 3 and not found.skipped
    (tmp_path / "classes.txt").write_text(f"{decomposed}\n")
    assert read_class_list(tmp_path / "classes.txt") == [composed]
    (tmp_path / "classes.txt").write_text(f"{decomposed}\n{composed}\n")
    with pytest.raises(DataError, match="repeats"):
        read_class_list(tmp_path / "classes.txt")


def test_ucf_names_and_manifest_labels_are_normalised_too(tmp_path: Path) -> None:
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    touch(tmp_path, f"v_{decomposed}_g01_c01.avi", f"v_{composed}_g02_c01.avi")
    found = discover(tmp_path, label_from="ucf", classes=[composed])
    assert [(video.label, video.group) for video in found.videos] == [
        (composed, f"{composed}_g01"),
        (composed, f"{composed}_g02"),
    ]
    rows = [f"v_{composed}_g02_c01.avi,{decomposed}", f"v_{decomposed}_g01_c01.avi,{composed}"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert [row.label for row in read_manifest_csv(tmp_path / "labels.csv")] == [composed, composed]
    found = discover(tmp_path, manifest=tmp_path / "labels.csv", classes=[composed])
    assert len(found.videos) == 2 and not found.skipped


def test_ucf101_class_ind_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    touch(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Archery/v_Archery_g01_c01.avi")
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 ApplyLipstick\n3 Archery\n")
    with caplog.at_level(logging.INFO, logger="video3dcnn.discovery"):
        found = discover(tmp_path, classes=read_class_list(tmp_path / "classInd.txt"))
    assert found.classes == ("ApplyEyeMakeup", "ApplyLipstick", "Archery")
    assert [video.label for video in found.videos] == ["ApplyEyeMakeup", "Archery"]
    assert "read as UCF101 classInd.txt" in caplog.text


def test_own_classes_txt_with_numbered_names_is_read_line_by_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    touch(tmp_path, "1 Walking/a.mp4", "2 Running/b.mp4", "10 Jumping/c.mp4")
    (tmp_path / "classes.txt").write_text("".join(f"{name}\n" for name in discover(tmp_path).classes))
    with caplog.at_level(logging.INFO, logger="video3dcnn.discovery"):
        found = discover(tmp_path, classes=read_class_list(tmp_path / "classes.txt"))
    assert found.classes == ("1 Walking", "10 Jumping", "2 Running")
    assert [video.label for video in found.videos] == ["1 Walking", "10 Jumping", "2 Running"]
    assert not found.skipped
    assert "each line is a class name" in caplog.text


def test_numbered_lines_whose_names_clash_are_not_a_class_ind_file(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("1 Run\n2 run\n")
    assert read_class_list(tmp_path / "classes.txt") == ["1 Run", "2 run"]


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


def test_validation_groups_give_every_class_with_two_groups_one() -> None:
    videos = [LabelledVideo(Path(f"{c}/{g}.mp4"), f"{c}/{g}.mp4", f"C{c}", f"C{c}_g{g:02d}")
              for c in range(8) for g in range(1, 8)] + [LabelledVideo(Path("x.mp4"), "x.mp4", "Lone", "Lone_g01")]
    hashed = {video.group for video in videos if is_validation(video.group, 0.2)}
    assert len({group.split("_")[0] for group in hashed}) < 8  # the hash alone misses a class (why this exists)
    chosen = validation_groups(videos, 0.2)
    assert hashed <= chosen
    assert {group.split("_")[0] for group in chosen} - {"Lone"} == {f"C{c}" for c in range(8)}
    assert ("Lone_g01" in chosen) == ("Lone_g01" in hashed)  # a class with one group is never forced
    for c in range(8):
        groups = {video.group for video in videos if video.label == f"C{c}"}
        if not groups & hashed:  # exactly one added: the smallest hash
            assert groups & chosen == {min(groups, key=lambda group: stable_fraction(group, "split:"))}
    assert validation_groups(list(reversed(videos)), 0.2) == chosen  # order does not matter
    assert validation_groups(videos, 0.0) == frozenset()


@pytest.mark.parametrize(
    ("key", "salt", "expected"),
    [  # computed before non-UTF-8 keys were handled: the split of existing data sets must not move
        ("abc", "", 0.7283949105904022),
        ("Walk/1.mp4", "split:", 0.9393784245113224),
        ("Caf\u00e9_g01", "split:", 0.5596950882515364),
        ("HandstandPushups_g01", "split:", 0.03994097430893754),
        ("clips/a.mp4", "part:", 0.772074935493257),
        ("v_YoYo_g03_c01.avi", "order:", 0.013869120608317069),
    ],
)
def test_stable_fraction_of_ordinary_strings_is_pinned(key: str, salt: str, expected: float) -> None:
    assert stable_fraction(key, salt) == expected


def test_file_names_that_are_not_utf8_are_split_and_given_a_part(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path / "Walk")
    os.mkdir(folder)
    try:
        with open(os.path.join(folder, b"caf\xe9.mp4"), "wb"):  # Latin-1 bytes: Python names it with a surrogate
            pass
    except OSError as exc:
        pytest.skip(f"this file system refuses names that are not UTF-8: {exc}")
    (video,) = discover(tmp_path).videos
    assert video.relpath == "Walk/caf\udce9.mp4"
    digest = hashlib.sha256(b"split:Walk/caf\xed\xb3\xa9.mp4").digest()  # the surrogate as its three UTF-8 bytes
    assert stable_fraction(video.group, "split:") == int.from_bytes(digest[:8], "big") / 2**64
    assert is_validation(video.group, 1.0) and not is_validation(video.group, 0.0)
    assert in_part(video.relpath, 1, 0)


def test_the_parts_give_each_video_to_exactly_one_instance() -> None:
    paths = [f"Class{i % 7}/video{i}.mp4" for i in range(600)]
    parts = [[path for path in paths if in_part(path, 3, index)] for index in range(3)]
    assert sorted(path for part in parts for path in part) == sorted(paths)
    assert all(150 < len(part) < 250 for part in parts)


def test_auto_names_the_files_that_break_the_ucf101_pattern() -> None:
    relpaths = [f"v_Jump_g{group:02d}_c01.avi" for group in range(1, 6)] + ["notes-video.avi"]
    with pytest.raises(ConfigError, match=r"5 of 6 names follow .* but not notes-video\.avi: .*--label-from ucf"):
        resolve_label_source("auto", None, relpaths)
    assert resolve_label_source("ucf", None, relpaths)[0] == "ucf"


def test_a_manifest_row_with_a_full_path_inside_the_input_counts_as_its_relative_path(tmp_path: Path) -> None:
    touch(tmp_path, "a/x.mp4", "b/y.mp4")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"{tmp_path / 'a' / 'x.mp4'},Walk\nb/y.mp4,Run\n")
    found = discover(tmp_path, label_from="manifest", manifest=manifest)
    assert [video.relpath for video in found.videos] == ["a/x.mp4", "b/y.mp4"]  # not the machine's full path
    assert found.skipped == ()  # and not also reported as "not listed"
    manifest.write_text(f"{tmp_path / 'a' / 'x.mp4'},Walk\na/x.mp4,Walk\n")
    with pytest.raises(DataError, match="twice"):
        discover(tmp_path, label_from="manifest", manifest=manifest)


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        ("bad\nname", "line break"),
        ("cr\rname", "line break"),
        ("tab\x0bname", "control character"),
        ("sep\u2028name", "line break"),
        ("#comment", "starts with '#'"),
        (" lead", "white space"),
        ("trail ", "white space"),
        (b"caf\xe9", "not valid UTF-8"),
    ],
    ids=["newline", "cr", "vertical-tab", "line-separator", "hash", "leading-space", "trailing-space", "latin-1"],
)
def test_a_class_folder_that_classes_txt_cannot_hold_is_refused_naming_it(
    tmp_path: Path, folder: str | bytes, problem: str
) -> None:
    """classes.txt holds one stripped name per line and skips '#' lines: such a name would not read back as itself, and
    predict would name the videos wrongly. Refused before anything is written, with the folder and the fix."""
    touch(tmp_path, "Zed/a.mp4")
    path = os.path.join(os.fsencode(tmp_path), folder if isinstance(folder, bytes) else os.fsencode(folder))
    try:
        os.mkdir(path)
        open(os.path.join(path, b"b.mp4"), "wb").close()
    except OSError as exc:
        pytest.skip(f"this file system refuses the name: {exc}")
    with pytest.raises(DataError, match=f"the class folder .* {problem}.*rename the folder") as caught:
        discover(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert (repr(folder) if isinstance(folder, bytes) else repr(folder)) in message


def test_names_with_inner_spaces_and_signs_stay_classes(tmp_path: Path) -> None:
    names = ["Apply Eye Makeup", "C# code", "a,b", "Caf\u00e9", "Zed"]
    for name in names:
        touch(tmp_path, f"{name}/x.mp4")
    assert discover(tmp_path).classes == tuple(sorted(names))


def test_ucf_names_and_manifest_labels_that_classes_txt_cannot_hold_are_refused(tmp_path: Path) -> None:
    touch(tmp_path, "v_#tag_g01_c01.avi", "v_Ok_g01_c01.avi")
    with pytest.raises(DataError, match=r"the class '#tag' of 'v_#tag_g01_c01.avi' starts with '#'.*rename the file"):
        discover(tmp_path)
    (tmp_path / "m.csv").write_text("v_Ok_g01_c01.avi,#x\nv_#tag_g01_c01.avi,Ok\n")
    with pytest.raises(DataError, match=r"the label '#x' of 'v_Ok_g01_c01.avi' starts with '#'.*in the manifest"):
        discover(tmp_path, manifest=tmp_path / "m.csv")


def test_a_class_list_line_with_a_control_character_is_refused(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("Run\nWa\x01lk\n")
    with pytest.raises(DataError, match=r"classes.txt: the name 'Wa\\x01lk' holds .* control character"):
        read_class_list(tmp_path / "classes.txt")


def test_manifest_rows_that_leave_the_input_are_refused_alike_whether_the_file_exists_or_not(tmp_path: Path) -> None:
    """``../../etc/shadow`` was opened, and 'exists' and 'missing' read differently: an existence oracle."""
    root = tmp_path / "input"
    touch(root, "clips/a.mp4")
    touch(tmp_path, "outside.mp4")  # exists, outside the input
    rows = ["clips/a.mp4", "../outside.mp4", "../gone.mp4", "clips/../../other.mp4", "../../../../etc/shadow",
            str(tmp_path / "outside.mp4"), str(tmp_path / "gone.mp4"), "/etc/passwd"]  # fmt: skip
    (root / "m.csv").write_text("".join(f"{row},Walk\n" for row in rows))
    found = discover(root, manifest=root / "m.csv")
    assert [video.relpath for video in found.videos] == ["clips/a.mp4"]
    refused = {item.relpath: item for item in found.skipped}
    assert sorted(refused) == sorted(["../outside.mp4", "../gone.mp4", "../other.mp4", "../../../../etc/shadow",
                                      str(tmp_path / "outside.mp4"), str(tmp_path / "gone.mp4"), "/etc/passwd"])
    assert {item.reason for item in refused.values()} == {
        "outside the input directory: not read (pass --allow-outside-input to read files outside it)"
    }
    assert all(item.bad for item in refused.values())


def test_allow_outside_reads_rows_outside_the_input(tmp_path: Path) -> None:
    root = tmp_path / "input"
    touch(root, "clips/a.mp4")
    touch(tmp_path, "elsewhere/b.mp4", "elsewhere/c.mp4")
    (root / "m.csv").write_text(f"clips/a.mp4,Walk\n../elsewhere/b.mp4,Run\n{tmp_path / 'elsewhere' / 'c.mp4'},Run\n")
    found = discover(root, manifest=root / "m.csv", allow_outside=True)
    assert [(video.relpath, video.path) for video in found.videos] == [
        ("../elsewhere/b.mp4", root / "../elsewhere/b.mp4"),
        (str(tmp_path / "elsewhere" / "c.mp4"), tmp_path / "elsewhere" / "c.mp4"),
        ("clips/a.mp4", root / "clips/a.mp4"),
    ]


def special_files(root: Path) -> dict[str, str]:
    """A named pipe, a link to /dev/zero, a folder and a device, each named like a video; -> what each is."""
    root.mkdir(parents=True, exist_ok=True)
    os.mkfifo(root / "pipe.mp4")
    (root / "zero.mp4").symlink_to("/dev/zero")
    (root / "folder.mp4").mkdir()
    (root / "null.mp4").symlink_to("/dev/null")
    return {
        "pipe.mp4": "is a named pipe (FIFO), not a video file",
        "zero.mp4": "is a symbolic link to a character device (/dev/zero), not a video file",
        "null.mp4": "is a symbolic link to a character device (/dev/null), not a video file",
    }


def test_a_pipe_a_device_or_a_folder_listed_in_the_manifest_is_skipped_saying_what_it_is(tmp_path: Path) -> None:
    expected = special_files(tmp_path / "Walk")
    touch(tmp_path, "Walk/ok.mp4")
    names = [*expected, "folder.mp4", "ok.mp4", "gone.mp4"]
    (tmp_path / "m.csv").write_text("".join(f"Walk/{name},Walk\n" for name in names))
    found = discover(tmp_path, manifest=tmp_path / "m.csv")
    assert [video.relpath for video in found.videos] == ["Walk/ok.mp4"]
    reasons = {item.relpath: item.reason for item in found.skipped}
    assert reasons == {
        **{f"Walk/{name}": reason for name, reason in expected.items()},
        "Walk/folder.mp4": "is a directory, not a video file",
        "Walk/gone.mp4": "listed in m.csv but missing",
    }


def test_a_pipe_or_a_device_in_a_class_folder_is_skipped_saying_what_it_is(tmp_path: Path) -> None:
    expected = special_files(tmp_path / "Walk")
    touch(tmp_path, "Walk/ok.mp4", "Run/ok.mp4")
    (tmp_path / "Run" / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    found = discover(tmp_path)
    assert [video.relpath for video in found.videos] == ["Run/ok.mp4", "Walk/ok.mp4"]  # folder.mp4: a folder, searched
    assert {item.relpath: item.reason for item in found.skipped} == {
        **{f"Walk/{name}": reason for name, reason in expected.items()},
        "Run/dangling.mp4": "is a broken symbolic link, not a video file",
    }
