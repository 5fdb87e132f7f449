"""Finding videos and their labels: class folders, UCF101 file names or a manifest CSV; groups and the split.

Layouts (``label_from``):

- ``folder``: ``<root>/<Class>/.../<video>``: the first folder level under the root names the class (UCF101's own
  layout, Kinetics rebuilt into class folders). Videos directly in the root are skipped.
- ``ucf``: ``v_<Class>_g<GG>_c<CC>.<ext>`` anywhere under the root (UCF101 flattened).
- ``manifest``: a CSV of ``path,label[,group]`` rows (paths relative to the root; an optional header row starting with
  ``path`` is skipped). Videos on disk that the CSV does not list are skipped and reported.
- ``auto``: ``manifest`` when a manifest is given; else ``folder`` when every video sits in a folder; else ``ucf`` when
  every name follows the UCF101 pattern; else ``folder`` when some videos sit in folders.

Class names are matched case-insensitively (UCF101 names the folder ``HandstandPushups`` but the files
``v_HandStandPushups_*``); a class is spelled as in ``--classes``, else as most of its videos spell it. Without
``--classes`` the class list is sorted (code-point order) and label ``i`` is its ``i``-th name.

Groups: the manifest's group column, else the UCF101 group (``<Class>_g<GG>``: clips cut from one source video), else
the video itself. The train/validation split is decided per group by a stable hash (SHA-256) of the group id, so
separate instances agree without talking and no group straddles the split.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from video3dcnn.errors import ConfigError, DataError
from video3dcnn.shards import read_classes

logger = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = (
    ".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg",
    ".m1v", ".m2v", ".ts", ".wmv", ".flv", ".3gp", ".ogv",
)  # fmt: skip
LABEL_SOURCES = ("auto", "folder", "ucf", "manifest")
UCF_NAME = re.compile(r"^v_(?P<label>[^_]+)_g(?P<group>\d+)_c(?P<clip>\d+)$", re.IGNORECASE)
MANIFEST_HEADERS = frozenset({"path", "file", "filename", "video"})
NUMBERED_CLASS = re.compile(r"^\d+\s+(?P<name>\S+)$")  # UCF101's classInd.txt: "1 ApplyEyeMakeup"
LAYOUTS_HELP = (
    "expected class folders (<input>/<Class>/<video>), UCF101 names (v_<Class>_g<NN>_c<NN>.avi) "
    "or --manifest CSV with path,label[,group] rows"
)


@dataclass(frozen=True)
class LabelledVideo:
    """One video to process.

    Attributes:
        path: the file.
        relpath: its path relative to the input root, with ``/`` separators (stable across machines).
        label: class name, spelled as in ``Discovery.classes``.
        group: group id; videos of one group always land on the same side of the split.
    """

    path: Path
    relpath: str
    label: str
    group: str


@dataclass(frozen=True)
class SkippedFile:
    """A file left out, with the reason (one line); ``bad`` marks input damage (counted against the bad fraction)."""

    relpath: str
    reason: str
    bad: bool = False


@dataclass(frozen=True)
class Discovery:
    """The outcome of ``discover``.

    Attributes:
        videos: labelled videos, sorted by ``relpath``.
        classes: the class list; label index ``i`` is ``classes[i]``.
        skipped: files left out before decoding (no label, class not in the list, listed but missing...).
        label_source: ``folder``, ``ucf`` or ``manifest`` (what ``auto`` resolved to).
    """

    videos: tuple[LabelledVideo, ...]
    classes: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
    label_source: str

    def label_index(self, name: str) -> int:
        """Index of class ``name`` in ``classes``."""
        return self.classes.index(name)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def find_videos(root: Path, extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> list[Path]:
    """All video files under ``root``, recursively, sorted by relative path.

    Hidden files and folders (names starting with ``.``) and files with other extensions are ignored; extensions match
    case-insensitively.
    """
    root = Path(root)
    suffixes = {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [name for name in subdirs if not _is_hidden(name)]
        for name in files:
            if not _is_hidden(name) and os.path.splitext(name)[1].lower() in suffixes:
                found.append(Path(directory) / name)
    return sorted(found, key=lambda path: relative_posix(path, root))


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators."""
    return Path(path).relative_to(root).as_posix()


def stable_fraction(key: str, salt: str = "") -> float:
    """A number in [0, 1) derived from ``key`` by SHA-256: the same on every machine and Python version."""
    digest = hashlib.sha256(f"{salt}{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_validation(group: str, val_fraction: float) -> bool:
    """Whether ``group`` belongs to the validation split (about ``val_fraction`` of all groups)."""
    return stable_fraction(group, "split:") < val_fraction


def in_partition(relpath: str, num_parts: int, index: int) -> bool:
    """Whether the video at ``relpath`` falls to instance ``index`` of ``num_parts`` (stable hash of the path)."""
    return int(stable_fraction(relpath, "part:") * num_parts) == index


def read_class_list(path: Path) -> list[str]:
    """Read a ``--classes`` file: one name per line, or UCF101's ``classInd.txt`` (``<number> <name>``).

    Raises:
        DataError: unreadable, empty, or two names that differ only in case.
    """
    names = read_classes(Path(path))
    numbered = [NUMBERED_CLASS.match(name) for name in names]
    if all(numbered):
        names = [match["name"] for match in sorted(numbered, key=lambda m: int(m.group(0).split()[0]))]
    folded = collections.Counter(name.casefold() for name in names)
    clashes = sorted(name for name in names if folded[name.casefold()] > 1)
    if clashes:
        raise DataError(f"class list {path} has names that differ only in case: {', '.join(clashes)}")
    return names


@dataclass(frozen=True)
class _Candidate:
    path: Path
    relpath: str
    label: str
    group: str | None


def ucf_group(stem: str) -> str | None:
    """The two-digit group number of a UCF101 file name stem (``v_X_g08_c01`` -> ``"08"``), else None."""
    match = UCF_NAME.match(stem)
    return f"{int(match['group']):02d}" if match else None


def _label_by_folder(path: Path, relpath: str) -> _Candidate | str:
    parts = relpath.split("/")
    if len(parts) < 2:
        return "not inside a class folder"
    return _Candidate(path, relpath, parts[0], None)


def _label_by_ucf_name(path: Path, relpath: str) -> _Candidate | str:
    match = UCF_NAME.match(PurePosixPath(relpath).stem)
    if not match:
        return "name does not follow v_<Class>_g<NN>_c<NN>"
    return _Candidate(path, relpath, match["label"], None)


def resolve_label_source(label_from: str, manifest: Path | None, relpaths: Sequence[str]) -> tuple[str, str]:
    """Resolve ``auto`` into ``folder``, ``ucf`` or ``manifest``; returns the source and why it was chosen.

    Raises:
        ConfigError: an unknown source, a manifest without ``manifest``/``auto`` or vice versa, or no usable layout.
    """
    if label_from not in LABEL_SOURCES:
        raise ConfigError(f"invalid --label-from {label_from!r}: choose one of {', '.join(LABEL_SOURCES)}")
    if manifest is not None and label_from not in ("auto", "manifest"):
        raise ConfigError(f"--manifest was given with --label-from {label_from}: use --label-from manifest (or auto)")
    if label_from == "manifest" and manifest is None:
        raise ConfigError("--label-from manifest needs --manifest CSV (rows: path,label[,group])")
    if label_from != "auto":
        return label_from, "as requested"
    if manifest is not None:
        return "manifest", "a manifest was given"
    in_folders = sum("/" in rel for rel in relpaths)
    if in_folders == len(relpaths):
        return "folder", "every video sits in a class folder"
    if all(UCF_NAME.match(PurePosixPath(rel).stem) for rel in relpaths):
        return "ucf", "every file name follows v_<Class>_g<NN>_c<NN>"
    if in_folders:
        return "folder", f"{in_folders} of {len(relpaths)} videos sit in class folders; the others are skipped"
    raise ConfigError(f"cannot tell the classes of the videos: {LAYOUTS_HELP}")


@dataclass(frozen=True)
class ManifestRow:
    """One row of a manifest CSV."""

    relpath: str
    label: str
    group: str | None


def _normalise_relpath(text: str) -> str:
    return PurePosixPath(text.strip().replace("\\", "/")).as_posix().removeprefix("./")


def _manifest_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """Non-blank, non-comment rows with their line numbers, the optional header row dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"cannot read manifest {path}: {exc.strerror}") from None
    first = True
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if first and cells[0].lower() in MANIFEST_HEADERS:
            first = False
            continue
        first = False
        yield number, cells


def read_manifest_csv(path: Path) -> list[ManifestRow]:
    """Read a manifest CSV of ``path,label[,group]`` rows.

    Raises:
        DataError: unreadable file, a row without path or label, a path listed twice, or no rows.
    """
    rows: list[ManifestRow] = []
    seen: set[str] = set()
    for number, cells in _manifest_rows(path):
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise DataError(f"{path} line {number}: expected path,label[,group], got {','.join(cells)!r}")
        relpath = _normalise_relpath(cells[0])
        if relpath in seen:
            raise DataError(f"{path} line {number}: {relpath} is listed twice")
        seen.add(relpath)
        rows.append(ManifestRow(relpath, cells[1], cells[2] if len(cells) > 2 and cells[2] else None))
    if not rows:
        raise DataError(f"manifest {path} lists no videos (rows: path,label[,group])")
    return rows


def _from_manifest(root: Path, manifest: Path, relpaths: Sequence[str]) -> tuple[list[_Candidate], list[SkippedFile]]:
    candidates, skipped = [], []
    rows = read_manifest_csv(manifest)
    for row in rows:
        path = root / row.relpath
        if path.is_file():
            candidates.append(_Candidate(path, row.relpath, row.label, row.group))
        else:
            skipped.append(SkippedFile(row.relpath, f"listed in {Path(manifest).name} but missing", bad=True))
    listed = {row.relpath for row in rows}
    skipped += [SkippedFile(rel, f"not listed in {Path(manifest).name}") for rel in relpaths if rel not in listed]
    return candidates, skipped


def _from_layout(
    source: str, files: Sequence[Path], relpaths: Sequence[str]
) -> tuple[list[_Candidate], list[SkippedFile]]:
    labeller = _label_by_folder if source == "folder" else _label_by_ucf_name
    candidates, skipped = [], []
    for path, relpath in zip(files, relpaths):
        result = labeller(path, relpath)
        if isinstance(result, str):
            skipped.append(SkippedFile(relpath, result))
        else:
            candidates.append(result)
    return candidates, skipped


def _canonical_classes(
    candidates: Sequence[_Candidate], classes: Sequence[str] | None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The class list and a map from case-folded label to its spelling in that list."""
    if classes:
        return tuple(classes), {name.casefold(): name for name in classes}
    spellings: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for candidate in candidates:
        spellings[candidate.label.casefold()][candidate.label] += 1
    canon = {fold: min(counts, key=lambda name: (-counts[name], name)) for fold, counts in spellings.items()}
    return tuple(sorted(canon.values())), canon


def _group_of(candidate: _Candidate, label: str) -> str:
    if candidate.group:
        return candidate.group
    group = ucf_group(PurePosixPath(candidate.relpath).stem)
    return f"{label}_g{group}" if group else candidate.relpath


def _no_labelled_videos(root: Path, skipped: Sequence[SkippedFile]) -> DataError:
    example = f" (e.g. {skipped[0].relpath}: {skipped[0].reason})" if skipped else ""
    return DataError(f"no labelled video under {root}: {len(skipped)} files skipped{example}; {LAYOUTS_HELP}")


def discover(
    root: Path,
    label_from: str = "auto",
    manifest: Path | None = None,
    classes: Sequence[str] | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
) -> Discovery:
    """Find the videos under ``root`` and label them.

    Args:
        root: the input directory.
        label_from: ``auto``, ``folder``, ``ucf`` or ``manifest`` (see the module docstring).
        manifest: a CSV of ``path,label[,group]`` rows, paths relative to ``root``.
        classes: a fixed class list (label ``i`` = ``classes[i]``); videos of other classes are skipped.
        extensions: video file extensions to look for.

    Returns:
        A ``Discovery``: ``videos`` is a tuple of ``LabelledVideo(path, relpath, label, group)`` sorted by
        ``relpath``; ``classes`` the class list; ``skipped`` a tuple of ``SkippedFile(relpath, reason)``;
        ``label_source`` what ``auto`` resolved to.

    Raises:
        ConfigError: contradictory options or no recognisable layout.
        DataError: no video files, an unreadable manifest, or no video that could be labelled.
    """
    root = Path(root)
    files = find_videos(root, extensions)
    relpaths = [relative_posix(path, root) for path in files]
    if not files and manifest is None:
        raise DataError(f"no video files under {root} (looked for {' '.join(extensions)}); {LAYOUTS_HELP}")
    source, why = resolve_label_source(label_from, manifest, relpaths)
    logger.info("labels from %s: %s", source, why)
    if source == "manifest":
        candidates, skipped = _from_manifest(root, Path(manifest), relpaths)
    else:
        candidates, skipped = _from_layout(source, files, relpaths)
    class_names, canon = _canonical_classes(candidates, classes)
    videos = []
    for candidate in candidates:
        label = canon.get(candidate.label.casefold())
        if label is None:
            skipped.append(SkippedFile(candidate.relpath, f"class {candidate.label!r} is not in the --classes list"))
            continue
        videos.append(LabelledVideo(candidate.path, candidate.relpath, label, _group_of(candidate, label)))
    if not videos:
        raise _no_labelled_videos(root, skipped)
    videos.sort(key=lambda video: video.relpath)
    skipped.sort(key=lambda item: item.relpath)
    return Discovery(tuple(videos), class_names, tuple(skipped), source)
