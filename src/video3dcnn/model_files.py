"""The files of a trained-model directory: what ``train`` writes and ``predict``/``evaluate`` read.

A model directory (``SM_MODEL_DIR`` in a training job, packed by SageMaker into ``model.tar.gz``) holds
``model.keras`` (the Keras model), ``classes.txt`` (``shards.CLASSES_FILE``: line i names output i) and
``clip_spec.json`` (``ClipSpec.to_dict``: how a video becomes one model input).

A folder holding only the job's ``model.tar.gz`` (as downloaded from S3) is unpacked in place by
``extract_model_archive``, which trusts nothing in the archive: only those three names are taken (``./model.keras``,
as ``tar -C model .`` writes it, counts as ``model.keras``), each must be a regular file (never a link), and the
files may not expand beyond ``extraction_limit`` of the archive's size; on any failure nothing is left behind.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from video3dcnn.config import ClipSpec
from video3dcnn.errors import DataError
from video3dcnn.files import atomic_path
from video3dcnn.shards import CLASSES_FILE

MODEL_FILE = "model.keras"
CLIP_SPEC_FILE = "clip_spec.json"
MODEL_ARCHIVE = "model.tar.gz"  # what SageMaker uploads from the model directory
MODEL_DIR_FILES = (MODEL_FILE, CLASSES_FILE, CLIP_SPEC_FILE)  # everything predict needs
EXTRACTION_FLOOR = 64 * 2**20  # extraction may write this much whatever the archive's size...
EXPANSION_RATIO = 10  # ...plus this many times the archive's size (a model.keras gzips to about 1/1.1 of its size)
CLIP_SPEC_MAX_BYTES = 2**16  # a clip_spec.json is about 200 bytes
REQUIRED_SPEC_KEYS = ("frames", "height", "width")  # the other keys have defaults (ClipSpec)


def extraction_limit(archive_bytes: int) -> int:
    """How many bytes unpacking an archive of ``archive_bytes`` may write (and read through), all files together."""
    return EXTRACTION_FLOOR + EXPANSION_RATIO * archive_bytes


def _wanted_members(archive: tarfile.TarFile, path: Path, limit: int) -> dict[str, tarfile.TarInfo]:
    """The members named like ``MODEL_DIR_FILES`` at the archive's top level (the last of a name wins, as tar does).

    Raises:
        DataError: the archive expands beyond ``limit``, or a wanted name is not a regular file.
    """
    found, names = {}, []
    for member in archive:
        if member.offset_data + member.size > limit:
            raise DataError(
                f"{path} expands to more than {limit} bytes ({EXPANSION_RATIO} times its size plus "
                f"{EXTRACTION_FLOOR // 2**20} MiB): not a model archive of video3dcnn; nothing was unpacked"
            )
        name = posixpath.normpath(member.name)
        names.append(member.name)
        if name in MODEL_DIR_FILES:
            found[name] = member
    for name, member in found.items():
        if not member.isreg():
            what = f"a link to {member.linkname}" if member.issym() or member.islnk() else "not a file"
            raise DataError(f"{path}: its {name} is {what}; a model archive holds plain files only")
    missing = [name for name in MODEL_DIR_FILES if name not in found]
    if missing:
        held = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") or "nothing"
        raise DataError(
            f"{path} lacks {', '.join(missing)} at its top level (it holds {held}): is it a video3dcnn model?"
        )
    return found


def _copy_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path, budget: int) -> int:
    """Write ``member``'s bytes to ``target``, at most ``budget`` of them; return how many were written."""
    source = archive.extractfile(member)
    written = 0
    with open(target, "wb") as handle:
        while chunk := source.read(2**20):
            written += len(chunk)
            if written > budget:
                raise DataError(f"{member.name} is larger than its archive said: not a model archive of video3dcnn")
            handle.write(chunk)
    return written


def extract_model_archive(model_dir: Path) -> None:
    """Unpack ``model_dir/model.tar.gz`` into ``model_dir``: ``model.keras``, ``classes.txt`` and ``clip_spec.json``.

    The three files are written under temporary names and renamed only when all three are complete; a failure
    leaves nothing behind.

    Raises:
        DataError: not a gzip-compressed tar archive, a file missing, a link or other non-file under a wanted name,
            or more to unpack than ``extraction_limit`` allows; or the folder cannot be written.
    """
    path = Path(model_dir) / MODEL_ARCHIVE
    limit = extraction_limit(path.stat().st_size)
    with _unpacking(path), tarfile.open(path, "r:gz") as archive:
        members = _wanted_members(archive, path, limit)
        with atomic_path(Path(model_dir) / MODEL_FILE) as model, atomic_path(Path(model_dir) / CLASSES_FILE) as classes:
            with atomic_path(Path(model_dir) / CLIP_SPEC_FILE) as spec:
                budget = limit
                for name, target in ((MODEL_FILE, model), (CLASSES_FILE, classes), (CLIP_SPEC_FILE, spec)):
                    budget -= _copy_member(archive, members[name], target, budget)


@contextlib.contextmanager
def _unpacking(path: Path) -> Iterator[None]:
    """Turn what reading a damaged or foreign archive raises, or a full disk, into one line naming the archive."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path} is not a gzip-compressed tar archive, or is damaged ({exc or type(exc).__name__}): "
            "give the model.tar.gz of a training job as it was written"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot unpack {path}: {exc.strerror or exc}") from None



def read_clip_spec(path: Path) -> ClipSpec:
    """The clip spec of a model directory (``clip_spec.json``), within ``ClipSpec``'s bounds.

    Raises:
        DataError: unreadable, not a JSON object, a required key missing, or a value of the wrong type or out of
            bounds (naming the file).
    """
    try:
        if path.stat().st_size > CLIP_SPEC_MAX_BYTES:
            raise DataError(f"{path} is larger than {CLIP_SPEC_MAX_BYTES} bytes: not a clip spec")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a JSON object (frames, height, width, ...), not {type(data).__name__}")
    missing = [key for key in REQUIRED_SPEC_KEYS if key not in data]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}")
    try:
        return ClipSpec.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: {exc}") from None
