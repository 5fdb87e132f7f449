"""Atomic writers: a file appears complete under its final name or not at all, with a plain open's permissions."""

from __future__ import annotations

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
