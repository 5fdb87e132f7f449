"""Atomic file writing: every file the package writes appears complete under its final name, or not at all.

A writer gets a temporary name beside the final one (``.<name>.<random><suffix>``) and the file is renamed into place
only when the writing block succeeds, so a killed or failed run never leaves a half-written file that looks complete.
Shards, manifests, class lists, previews, models, checkpoints, metrics, plots and predictions all go through here.

A write that fails (a full disk, no permission) raises ``WriteError``: one line naming the file, which the CLI reports
like any user-fixable problem. ``remove_stale_temporaries`` deletes the temporary files a killed run left behind.
JSON is written strictly: NaN and infinity become ``null`` (``strict_json``), never the bare ``NaN`` that JSON parsers
refuse.

``FileLock`` keeps two runs from writing the same files at once (``flock``: the system releases it however the
holder ends, so a killed run leaves no stale lock).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from video3dcnn.errors import OutputError

logger = logging.getLogger(__name__)


class LockedError(Exception):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file (may be empty)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is locked by {holder or 'another process'}")
        self.path, self.holder = path, holder


class WriteError(OutputError, OSError):
    """A file could not be written (``OSError`` still catches it); the message names the file and the cause."""

    def __init__(self, path: Path, exc: OSError) -> None:
        cause = exc.strerror or str(exc) or type(exc).__name__
        hint = ": free space on that disk or write elsewhere" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        super().__init__(f"cannot write {path}: {cause}{hint}")
        self.errno, self.strerror, self.filename = exc.errno, exc.strerror, str(path)

    def __str__(self) -> str:
        return self.args[0]


# The names ``atomic_path`` gives its temporary files: ``.<final name>.<8 characters of mkstemp><suffix>``.
TEMPORARY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once, at import: os.umask can only be read by setting it


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp", wrap_errors: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask).

    ``suffix`` ends the temporary name, for writers that choose the format by extension (``.tmp.keras``); it starts
    with ``.tmp``, so that ``remove_stale_temporaries`` knows the file. ``wrap_errors=False`` leaves an ``OSError``
    of the block as it is (for blocks that also read other files).

    Raises:
        WriteError: an ``OSError`` (a full disk, no permission) while creating, writing or renaming the file.
    """
    if not suffix.startswith(".tmp"):
        raise ValueError(f"temporary suffixes start with .tmp, not {suffix!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise WriteError(path, exc) from None
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as exc:
            if not wrap_errors or isinstance(exc, WriteError):
                raise
            raise WriteError(path, exc) from None
        try:
            os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the file from other users and the host
            os.replace(tmp_path, path)
        except OSError as exc:
            raise WriteError(path, exc) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(directory: Path | None) -> list[Path]:
    """Delete the temporary files of ``atomic_path`` that a killed run left in ``directory`` (not below it).

    Returns:
        The files removed (none when ``directory`` is None or missing).
    """
    if directory is None or not Path(directory).is_dir():
        return []
    removed = []
    for path in Path(directory).iterdir():
        if TEMPORARY_NAME.match(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        logger.info("removed %d temporary file(s) of an interrupted run from %s: %s", len(removed), directory,
                    ", ".join(p.name for p in removed))
    return removed


def strict_json(data: Any) -> Any:
    """``data`` with every NaN or infinite float (Python or NumPy) replaced by None, for ``json.dumps``."""
    if isinstance(data, dict):
        return {key: strict_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(value) for value in data]
    if isinstance(data, float) or type(data).__name__.startswith("float"):
        value = float(data)
        return value if math.isfinite(value) else None
    return data


def dumps_strict(data: Any, **options: Any) -> str:
    """``json.dumps`` of ``strict_json(data)``: always valid JSON (RFC 8259 has no NaN or Infinity)."""
    return json.dumps(strict_json(data), allow_nan=False, **options)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as indented, strict JSON to ``path`` atomically (NaN and infinity as null)."""
    write_text_atomic(path, dumps_strict(data, indent=2, sort_keys=False) + "\n")


def _take(path: Path) -> int | None:
    """An open descriptor of ``path`` locked exclusively, or None when a finishing holder removed the file meanwhile.

    Raises:
        LockedError: another process holds the lock.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
        os.close(fd)
        raise LockedError(path, holder) from None
    except OSError:
        os.close(fd)
        raise
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # the holder removed the file between our open and our lock: lock the new file instead
        os.close(fd)
        return None
    return fd


class FileLock:
    """An exclusive lock on a file, held until ``release()`` (or the end of a ``with`` block), which removes the file.

    Nothing waits: ``acquire`` fails at once when another process holds the lock.
    """

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path, self._fd = Path(path), fd

    @classmethod
    def acquire(cls, path: Path, holder: str) -> FileLock:
        """Lock ``path`` (created if missing) and write ``holder`` into it (one line: who holds it, for the message
        of a process that finds it locked). On a file system without locks (some network file systems) a warning is
        logged and the returned lock holds nothing.

        Raises:
            LockedError: another process holds the lock.
            OSError: the file cannot be created.
        """
        fd = None
        try:
            while fd is None:
                fd = _take(Path(path))
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            logger.warning("cannot lock %s (%s): a concurrent run will not be refused", path, exc.strerror or exc)
            return cls(path, None)
        os.ftruncate(fd, 0)
        os.write(fd, holder.encode("utf-8", "replace") + b"\n")
        return cls(path, fd)

    def release(self) -> None:
        """Remove the file, then unlock (a process that opened the old file meanwhile then locks a new one)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        self.path.unlink(missing_ok=True)
        os.close(fd)

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
