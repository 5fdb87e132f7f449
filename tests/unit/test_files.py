"""Atomic writers: a file appears complete under its final name or not at all, with a plain open's permissions."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from video3dcnn import files


def test_files_written_atomically_get_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = tmp_path / "atomic.json"
    files.write_json_atomic(atomic, {"a": 1})
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~files._UMASK
    assert os.access(atomic, os.R_OK)


def test_text_and_json_land_whole_and_replace_what_was_there(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "out.json"  # missing parents are created
    files.write_text_atomic(path, "old\n")
    files.write_json_atomic(path, {"b": [1, 2], "a": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"b": [1, 2], "a": "é"}
    assert path.read_text(encoding="utf-8").endswith("}\n")
    assert list(path.parent.iterdir()) == [path]


def test_a_failing_block_leaves_neither_the_file_nor_its_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(b"the previous model")
    with pytest.raises(RuntimeError):
        with files.atomic_path(path, suffix=".tmp.keras") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".model.keras.") and tmp.name.endswith(".tmp.keras")
            tmp.write_bytes(b"half")
            raise RuntimeError("killed while writing")
    assert path.read_bytes() == b"the previous model"
    assert list(tmp_path.iterdir()) == [path]


def test_a_file_lock_refuses_a_second_holder_at_once_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    with files.FileLock.acquire(path, "run A, process 1"):
        assert path.read_text() == "run A, process 1\n"
        with pytest.raises(files.LockedError) as caught:
            files.FileLock.acquire(path, "run B")  # a second open file description: refused like another process
        assert caught.value.holder == "run A, process 1"
    assert not path.exists()  # removed with the lock
    with files.FileLock.acquire(path, "run B"):  # free again
        assert path.read_text() == "run B\n"


def test_a_full_disk_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    with pytest.raises(files.WriteError) as caught:
        with files.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(caught.value) == f"cannot write {target}: No space left on device: free space on that disk or write " \
        "elsewhere"
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC  # still an OSError for callers
    assert list(tmp_path.iterdir()) == []


def test_writing_to_a_full_device_names_the_file(tmp_path: Path, monkeypatch) -> None:
    """The temporary file is a link to /dev/full, which refuses every write with ENOSPC, as a full disk does."""
    real_mkstemp = files.tempfile.mkstemp

    def full_mkstemp(**kwargs):
        fd, name = real_mkstemp(**kwargs)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return fd, name

    monkeypatch.setattr(files.tempfile, "mkstemp", full_mkstemp)
    with pytest.raises(files.WriteError, match=r"^cannot write .*metrics\.json: No space left on device"):
        files.write_json_atomic(tmp_path / "metrics.json", {"loss": 1.0})
    assert list(tmp_path.iterdir()) == []


def test_a_block_that_reads_other_files_can_keep_its_own_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        with files.atomic_path(tmp_path / "out", wrap_errors=False):
            (tmp_path / "missing").read_bytes()


def test_json_is_strict_nan_and_infinity_become_null(tmp_path: Path) -> None:
    import numpy as np

    files.write_json_atomic(tmp_path / "m.json", {"loss": [0.5, float("nan")], "best": {"val": np.float32("inf")}})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON")) == {
        "loss": [0.5, None], "best": {"val": None}}


def test_stale_temporaries_of_a_killed_run_are_removed_and_nothing_else(tmp_path: Path) -> None:
    stale = [".training_curves.png.k2j_x9aa.tmp", ".model.keras.abcdefgh.tmp.keras", ".metrics.json.0a1b2c3d.tmp"]
    kept = ["model.keras", ".hidden", "notes.tmp", ".x.tmp", "training_curves.png"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    removed = files.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert files.remove_stale_temporaries(tmp_path / "absent") == [] and files.remove_stale_temporaries(None) == []
