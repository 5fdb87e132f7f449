"""The processed-data format: clip shards, per-host manifests and classes.txt.

This is the interface between the processing image and the training image (see docs/data-format.md).

A processed-data directory holds, for every host that wrote into it:

- ``<host>-<NNNNN>.npz``: a shard, a zip of .npy members (deflated) read with ``np.load(allow_pickle=False)``:
  ``clips`` uint8 ``[N, T, H, W, C]`` (RGB or gray), ``labels`` int32 ``[N]`` (index into the class list),
  ``groups`` str ``[N]`` (group id: clips of one group never straddle the split), ``is_val`` bool ``[N]``,
  ``paths`` str ``[N]`` (source video, relative to the input root), ``frame_indices`` int32 ``[N, T]`` (which decoded
  frames form each clip).
- ``manifest-<host>.json``: written last; lists that host's shards, the class list, the clip spec, counts and every
  skipped file. Readers only trust shards listed in a manifest, so a killed run never looks complete.
- ``classes.txt``: the class list, one name per line, line i = label i.

Every file is written to a temporary name and renamed into place (``video3dcnn.files``).
"""

from __future__ import annotations

import collections
import io
import json
import math
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from video3dcnn.config import ClipSpec
from video3dcnn.errors import DataError
from video3dcnn.files import atomic_path, write_text_atomic

SCHEMA_VERSION = 1
SHARD_KEYS = ("clips", "labels", "groups", "is_val", "paths", "frame_indices")
CLASSES_FILE = "classes.txt"
MANIFEST_PREFIX = "manifest-"
_LOCAL_HEADER = struct.Struct("<4s5HIIIHH")  # zip local file header (30 bytes)
_NPY_HEADER_MAX = 4096  # a .npy header is far shorter than this
RUN_ID_COMMENT = "video3dcnn run_id={run_id}"  # a shard's ZIP comment: the run that wrote it

try:  # ISA-L deflates clips 6-7x faster than zlib level 1, for files about 3% larger (docs/benchmarks.md)
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - the processing extra installs it
    _deflate = None

try:  # zlib-ng inflates ~1.4x faster than zlib, and the loader spends most of its time inflating clips
    from zlib_ng import zlib_ng as _inflate
except ImportError:  # pragma: no cover - the training extra installs it
    _inflate = zlib

SHARD_PATTERN = re.compile(r"^(?P<host>.+)-(?P<index>\d{5})\.npz$")


def shard_name(host: str, index: int) -> str:
    """File name of shard ``index`` written by ``host``."""
    return f"{host}-{index:05d}.npz"


def manifest_name(host: str) -> str:
    """File name of ``host``'s manifest."""
    return f"{MANIFEST_PREFIX}{host}.json"


@dataclass
class Shard:
    """The arrays of one shard (see the module docstring for shapes and types)."""

    clips: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    is_val: np.ndarray
    paths: np.ndarray
    frame_indices: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def validate(self, spec: ClipSpec | None = None) -> None:
        """Raise DataError unless the arrays agree in length, dtype and (optionally) clip shape."""
        n = len(self)
        if self.clips.dtype != np.uint8 or self.clips.ndim != 5:
            raise DataError(f"clips must be uint8 [N,T,H,W,C], got {self.clips.dtype} {self.clips.shape}")
        for key in SHARD_KEYS:
            if getattr(self, key).shape[0] != n:
                raise DataError(f"shard arrays disagree in length: {key} has {getattr(self, key).shape[0]}, labels {n}")
        if spec is not None and tuple(self.clips.shape[1:]) != spec.shape:
            raise DataError(f"clip shape {tuple(self.clips.shape[1:])} does not match the clip spec {spec.shape}")


def deflate_clip(clip: np.ndarray) -> bytes:
    """One clip's bytes as a self-contained piece of a raw deflate stream (byte-aligned, not final).

    Pieces compressed separately (in the processing workers, in parallel) concatenate into one valid stream: each
    refers back only within itself and ends on a full flush. ``write_shard`` joins them; the bytes are the same
    whichever process compressed which clip. ISA-L (the ``isal`` package, level 2) compresses when installed, else
    zlib at level 1: either output is plain deflate that any zip reader inflates.
    """
    data = np.ascontiguousarray(clip, dtype=np.uint8).data
    if _deflate is not None:
        compressor = _deflate.compressobj(2, _deflate.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush(_deflate.Z_FULL_FLUSH)
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 9)  # memLevel 9: 10% faster than 8 on clips, same size
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def _npy_header(array: np.ndarray) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return header.getvalue()


class _ZipWriter:
    """Writes a ZIP archive member by member from data already compressed (or stored) by the caller.

    ``zipfile`` compresses everything it writes itself, in the writing process; shards need members assembled from
    clips deflated in the workers. Sizes and offsets past 4 GiB use the ZIP64 fields, as ``zipfile`` does. Members
    carry a fixed date (1980-01-01), so the same arrays give the same bytes.
    """

    _LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header, then name and extra field
    _CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory entry, then name and extra field
    _END64 = struct.Struct("<IQHHIIQQQQ")  # ZIP64 end of central directory record
    _LOCATOR = struct.Struct("<IIQI")  # ZIP64 end of central directory locator
    _END = struct.Struct("<IHHHHIIH")  # end of central directory record
    VERSION, VERSION64, DOS_DATE, FULL = 20, 45, (1 << 5) | 1, 0xFFFFFFFF
    LIMIT = FULL  # sizes and offsets from here on go into ZIP64 fields (tests lower it)

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._central: list[bytes] = []

    def add(self, name: str, method: int, crc: int, size: int, pieces: Sequence[bytes | memoryview]) -> None:
        """Append member ``name``: ``size`` bytes of CRC-32 ``crc``, held by ``pieces`` compressed with ``method``."""
        encoded = name.encode()
        compressed = sum(len(piece) for piece in pieces)
        offset = self._handle.tell()
        large = max(size, compressed) >= self.LIMIT
        version = self.VERSION64 if large or offset >= self.LIMIT else self.VERSION
        sizes = (self.FULL, self.FULL) if large else (compressed, size)
        extra = struct.pack("<HHQQ", 1, 16, size, compressed) if large else b""
        fields = (version, 0, method, 0, self.DOS_DATE, crc & 0xFFFFFFFF, *sizes, len(encoded))
        self._handle.write(self._LOCAL.pack(0x04034B50, *fields, len(extra)) + encoded + extra)
        for piece in pieces:
            self._handle.write(piece)
        if offset >= self.LIMIT:
            extra = (extra[4:] if large else b"") + struct.pack("<Q", offset)
            extra = struct.pack("<HH", 1, len(extra)) + extra
        position = self.FULL if offset >= self.LIMIT else offset
        central = self._CENTRAL.pack(0x02014B50, version, *fields, len(extra), 0, 0, 0, 0, position)
        self._central.append(central + encoded + extra)

    def close(self, comment: bytes = b"") -> None:
        """Write the central directory and the end records (ZIP64 ones when the archive needs them), which end with
        the archive's ``comment``."""
        start = self._handle.tell()
        for entry in self._central:
            self._handle.write(entry)
        end, count = self._handle.tell(), len(self._central)
        if start >= self.LIMIT or count >= 0xFFFF:
            record = (44, self.VERSION64, self.VERSION64, 0, 0, count, count, end - start, start)
            self._handle.write(self._END64.pack(0x06064B50, *record) + self._LOCATOR.pack(0x07064B50, 0, end, 1))
        entries, position = min(count, 0xFFFF), self.FULL if start >= self.LIMIT else start
        self._handle.write(self._END.pack(0x06054B50, 0, 0, entries, entries, end - start, position, len(comment)))
        self._handle.write(comment)


def write_shard(
    path: Path,
    shard: Shard,
    compress: bool = True,
    clip_pieces: Sequence[bytes] | None = None,
    run_id: str | None = None,
) -> int:
    """Write ``shard`` to ``path`` atomically and return the file size in bytes.

    The file is an ordinary ``.npz`` (``np.load`` reads it). Small members are always deflated; ``clips`` is deflated
    (``deflate_clip``) when ``compress`` is true (smaller files) and stored otherwise (about 2-3x faster to read, see
    docs/benchmarks.md). Deflated clips are one stream of per-clip pieces (``deflate_clip``); ``clip_pieces`` passes
    them in when the processing workers made them, else they are made here. ``run_id`` (the run writing it, as its
    manifest records it) becomes the archive's comment (``read_run_id``). The same arrays and run id give the same
    bytes.
    """
    shard.validate()
    clips = np.ascontiguousarray(shard.clips, dtype=np.uint8)
    arrays = {
        "labels": np.asarray(shard.labels, dtype=np.int32),
        "groups": np.asarray(shard.groups, dtype=str),
        "is_val": np.asarray(shard.is_val, dtype=bool),
        "paths": np.asarray(shard.paths, dtype=str),
        "frame_indices": np.asarray(shard.frame_indices, dtype=np.int32),
    }
    if clip_pieces is not None and len(clip_pieces) != len(clips):
        raise ValueError(f"{len(clip_pieces)} compressed pieces for {len(clips)} clips")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        archive = _ZipWriter(handle)
        header = _npy_header(clips)
        crc = zlib.crc32(clips.data.cast("B"), zlib.crc32(header))
        size = len(header) + clips.nbytes
        if compress:
            compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
            pieces = [compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)]
            pieces += clip_pieces if clip_pieces is not None else [deflate_clip(clip) for clip in clips]
            pieces.append(zlib.compressobj(1, zlib.DEFLATED, -15).flush())  # an empty final block ends the stream
            archive.add("clips.npy", zipfile.ZIP_DEFLATED, crc, size, pieces)
        else:
            archive.add("clips.npy", zipfile.ZIP_STORED, crc, size, [header, clips.data.cast("B")])
        for key, array in arrays.items():
            data = io.BytesIO()
            np.lib.format.write_array(data, array, allow_pickle=False)
            member = data.getvalue()
            deflated = zlib.compress(member, 1, wbits=-15)
            archive.add(f"{key}.npy", zipfile.ZIP_DEFLATED, zlib.crc32(member), len(member), [deflated])
        archive.close(RUN_ID_COMMENT.format(run_id=run_id).encode("ascii") if run_id else b"")
    return path.stat().st_size


def read_run_id(path: Path) -> str | None:
    """The run id a shard's archive comment names (``write_shard``); None for a shard without one.

    Raises:
        OSError: the file cannot be read (a missing file: FileNotFoundError).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            comment = archive.comment.decode("ascii", "replace")
    except zipfile.BadZipFile:
        return None
    prefix = RUN_ID_COMMENT.format(run_id="")
    return comment[len(prefix) :] if comment.startswith(prefix) else None


def _member_bytes(handle: BinaryIO, info: zipfile.ZipInfo) -> bytes:
    """The uncompressed bytes of one zip member, inflated in one call and checked against its CRC."""
    handle.seek(info.header_offset)
    header = handle.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise ValueError(f"bad local header for {info.filename}")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    handle.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    raw = handle.read(info.compress_size)
    if info.compress_type == zipfile.ZIP_STORED:
        data = raw
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        data = _inflate.decompress(raw, wbits=-15, bufsize=max(info.file_size, 1))
    else:
        raise ValueError(f"unsupported compression {info.compress_type} for {info.filename}")
    if len(data) != info.file_size or _inflate.crc32(data) != info.CRC:
        raise ValueError(f"{info.filename} is corrupt (size or CRC mismatch)")
    return data


def _parse_npy(data: bytes, name: str) -> np.ndarray:
    """An array over the bytes of a .npy file (no copy; read-only). Object arrays are refused (no pickle)."""
    header = io.BytesIO(data[:_NPY_HEADER_MAX])
    version = np.lib.format.read_magic(header)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(header)
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects, which shards never do")
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")


def read_shard(path: Path, keys: Sequence[str] = SHARD_KEYS) -> Shard | dict[str, np.ndarray]:
    """Read a shard without pickle, inflating each member in one call (zlib-ng when installed).

    This is ``np.load(path, allow_pickle=False)`` without its per-chunk reads: the loader's hot path. Arrays are
    read-only views over the inflated bytes.

    Args:
        path: the .npz file.
        keys: members to load; all of them (the default) returns a ``Shard``, a subset returns a dict.

    Raises:
        DataError: the file is missing, not a shard, corrupt, or lacks a member.
    """
    try:
        with open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
            missing = [key for key in keys if f"{key}.npy" not in names]
            if missing:
                raise DataError(f"{path} is not a video3dcnn shard: missing {', '.join(missing)}")
            arrays = {key: _parse_npy(_member_bytes(handle, archive.getinfo(f"{key}.npy")), key) for key in keys}
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"cannot read shard {path}: {exc}") from None
    if tuple(keys) == SHARD_KEYS:
        return Shard(**arrays)
    return arrays


def class_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a line of ``classes.txt`` and be read back as itself, or None when it can.

    A class list holds one name per line, skips blank lines and ``#`` comments and strips the lines, so a name must
    be UTF-8, hold no line break or other control character (``str.splitlines`` also breaks at form feeds, the
    separators U+001C-U+001E, U+0085, U+2028 and U+2029), not start or end with white space, and not start with
    ``#``. A space inside a name (``Apply Eye Makeup``) is fine.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if not name:
        return "is empty"
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in name):
        return "holds a line break or another control character"
    if name != name.strip():
        return "starts or ends with white space"
    if name.startswith("#"):
        return "starts with '#', which marks a comment in classes.txt"
    return None


def shown_name(name: str) -> str:
    """``name`` quoted on one line for a message: escapes visible, a name that is not UTF-8 as its bytes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return repr(name.encode("utf-8", "surrogateescape"))
    return repr(name)


def classes_text(classes: Sequence[str]) -> str:
    """The text of ``classes.txt``: line i is the name of label i.

    Raises:
        DataError: a name that would not read back as itself (``class_name_problem``).
    """
    for name in classes:
        problem = class_name_problem(name)
        if problem:
            raise DataError(f"class name {shown_name(name)} {problem}: classes.txt holds one class name per line")
    return "".join(f"{name}\n" for name in classes)


def write_classes(directory: Path, classes: Sequence[str]) -> Path:
    """Write ``classes.txt`` (overwritten, never appended): line i is the name of label i (see ``classes_text``)."""
    path = directory / CLASSES_FILE
    write_text_atomic(path, classes_text(classes))
    return path


def read_classes(path: Path) -> list[str]:
    """Read a class list: one name per line, blank lines and ``#`` comments ignored, duplicates refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read class list {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"class list {path} is not UTF-8 text") from None
    return class_names(text, path)


def class_names(text: str, path: Path, normalise: Callable[[str], str] = str) -> list[str]:
    """The names of a class list's ``text`` (read from ``path``), each passed through ``normalise``: one a line,
    blank lines and ``#`` comments ignored.

    Raises:
        DataError: no name, a name listed twice (after ``normalise``), or a name with a control character.
    """
    lines = text.splitlines()
    names = [normalise(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    for name in names:
        problem = class_name_problem(name)
        if problem:
            raise DataError(f"class list {path}: the name {shown_name(name)} {problem}")
    duplicates = sorted(name for name, count in collections.Counter(names).items() if count > 1)
    if duplicates:
        raise DataError(f"class list {path} repeats {', '.join(duplicates)}")
    if not names:
        raise DataError(f"class list {path} is empty")
    return names


@dataclass(frozen=True)
class ShardInfo:
    """One shard as listed in a manifest."""

    path: Path
    clips: int
    train: int
    validation: int


@dataclass(frozen=True)
class DatasetIndex:
    """Everything a reader needs to know about a processed-data directory, from its manifests alone."""

    directory: Path
    classes: tuple[str, ...]
    clip_spec: ClipSpec
    shards: tuple[ShardInfo, ...]
    manifests: tuple[Path, ...]

    @property
    def num_train(self) -> int:
        return sum(s.train for s in self.shards)

    @property
    def num_validation(self) -> int:
        return sum(s.validation for s in self.shards)


def read_manifest(path: Path) -> dict:
    """Read one manifest and check its schema version."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read manifest {path}: {exc}") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(f"{path} has schema_version {version}; this version of video3dcnn reads {SCHEMA_VERSION}")
    return manifest


def manifest_clip_spec(manifest: dict, path: Path) -> ClipSpec:
    """The clip spec of a manifest read from ``path``.

    Raises:
        DataError: missing, or out of ``ClipSpec``'s bounds (naming the manifest).
    """
    try:
        return ClipSpec.from_dict(manifest["clip_spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path} holds no valid clip_spec ({exc}): reprocess the videos") from None


def find_manifests(directory: Path) -> list[Path]:
    """All manifests directly in ``directory`` (sorted)."""
    return sorted(directory.glob(f"{MANIFEST_PREFIX}*.json"))


def check_same_data(
    one: tuple[Sequence[str], ClipSpec, str], other: tuple[Sequence[str], ClipSpec, str]
) -> None:
    """Refuse two data sets (or a data set and a model) unless class lists and clip specs agree.

    Args:
        one, other: ``(classes, clip_spec, name)``; the names appear in the error.

    Raises:
        DataError: naming both sides.
    """
    (classes, spec, name), (other_classes, other_spec, other_name) = one, other
    if tuple(classes) != tuple(other_classes):
        raise DataError(
            f"class lists differ between {name} and {other_name}: process all videos with one --classes file"
        )
    if spec != other_spec:
        raise DataError(f"clip specs differ between {name} and {other_name}")


def load_index(directory: Path) -> DatasetIndex:
    """Read and cross-check every manifest in ``directory``.

    Raises:
        DataError: no manifest; two manifests that disagree on the class list or clip spec (naming both); a listed
            shard that is missing.
    """
    directory = Path(directory)
    manifests = find_manifests(directory)
    if not manifests:
        raise DataError(
            f"no {MANIFEST_PREFIX}<host>.json in {directory}: point this at the output of 'video3dcnn process' "
            "(check the channel's S3 prefix or the --data-dir path)"
        )
    first_path, first = manifests[0], read_manifest(manifests[0])
    shards: list[ShardInfo] = []
    for path in manifests:
        manifest = first if path == first_path else read_manifest(path)
        check_same_data(
            (first["classes"], manifest_clip_spec(first, first_path), first_path.name),
            (manifest["classes"], manifest_clip_spec(manifest, path), path.name),
        )
        for entry in manifest["shards"]:
            shard_path = directory / entry["file"]
            if not shard_path.is_file():
                raise DataError(f"{path.name} lists {entry['file']}, which is missing from {directory}")
            shards.append(ShardInfo(shard_path, int(entry["clips"]), int(entry["train"]), int(entry["validation"])))
    return DatasetIndex(
        directory=directory,
        classes=tuple(first["classes"]),
        clip_spec=manifest_clip_spec(first, first_path),
        shards=tuple(shards),
        manifests=tuple(manifests),
    )
