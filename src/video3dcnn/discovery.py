"""Finding videos and their labels: class folders, UCF101 file names or a manifest CSV; groups and the split.

Layouts (``label_from``):

- ``folder``: ``<root>/<Class>/.../<video>``: the first folder level under the root names the class (UCF101's own
  layout, Kinetics rebuilt into class folders). Videos directly in the root are skipped. Symbolic links to folders
  are followed (each real folder is walked once, so a link loop neither hangs nor repeats videos).
- ``ucf``: ``v_<Class>_g<GG>_c<CC>.<ext>`` anywhere under the root (UCF101 flattened).
- ``manifest``: a CSV of ``path,label[,group]`` rows (paths relative to the root; an optional header row starting with
  ``path`` is skipped). Videos on disk that the CSV does not list are skipped and reported. A row whose path leaves the
  root (``../x``, or a full path elsewhere; judged on the text, ``..`` resolved, without looking at the file) is
  refused with the same reason whether or not the file exists, unless ``allow_outside`` is given.

Whatever the layout, a path that is not a regular file (a directory, a named pipe, a device, a socket, or a symbolic
link to one) is skipped saying what it is: never opened, since opening a named pipe blocks.
- ``auto``: ``manifest`` when a manifest is given; else ``folder`` when every video sits in a folder; else ``ucf`` when
  every name follows the UCF101 pattern; else ``folder`` when some videos sit in folders.

Class names are normalised to Unicode NFC (macOS writes folder names decomposed, ``Cafe`` + U+0301) and matched
case-insensitively (UCF101 names the folder ``HandstandPushups`` but the files ``v_HandStandPushups_*``); a class is
spelled as in ``--classes``, else as most of its videos spell it. Without ``--classes`` the class list is sorted
(code-point order) and label ``i`` is its ``i``-th name. The ``--classes`` file and the manifest must be UTF-8 text
(a leading byte order mark is ignored). A class name that ``classes.txt`` could not hold as one line and read back as
itself (a line break or other control character, white space at either end, a leading ``#``, not UTF-8) is refused,
naming the folder, file or label it came from.

Groups: the manifest's group column, else the UCF101 group (``<Class>_g<GG>``: clips cut from one source video), else
the video itself. The train/validation split is decided per group by a stable hash (SHA-256) of the group id, so
separate instances agree without talking and no group straddles the split. A class with two or more groups always
gets at least one validation group (when the fraction is above 0): if the hash put none of them there, the class's
group with the smallest hash goes (``validation_groups``), which every instance works out alike from the full list.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import logging
import os
import posixpath
import re
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from video3dcnn.errors import ConfigError, DataError
from video3dcnn.shards import class_name_problem, class_names, shown_name

logger = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = (
    ".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg",
    ".m1v", ".m2v", ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv",
)  # fmt: skip
LABEL_SOURCES = ("auto", "folder", "ucf", "manifest")
UCF_NAME = re.compile(r"^v_(?P<label>[^_]+)_g(?P<group>\d+)_c(?P<clip>\d+)$", re.IGNORECASE)
MANIFEST_HEADERS = frozenset({"path", "file", "filename", "video"})
NUMBERED_CLASS = re.compile(r"^(?P<number>\d+)\s+(?P<name>\S+)$")  # UCF101's classInd.txt: "1 ApplyEyeMakeup"
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


class ClassList(list[str]):
    """The class names of a ``--classes`` file, in label order.

    A file whose every line reads ``<number> <name>`` is either UCF101's ``classInd.txt`` or a plain list of names that
    begin with a number (class folders ``1 Walking``, ``2 Running``): the file alone cannot tell. The list then holds
    the ``classInd.txt`` reading (names in number order) and ``whole_lines`` the plain one; ``discover`` keeps the
    reading that labels more of the videos.
    """

    def __init__(self, names: Iterable[str], whole_lines: Sequence[str] | None = None) -> None:
        super().__init__(names)
        self.whole_lines = tuple(whole_lines) if whole_lines is not None else None


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _nfc(name: str) -> str:
    """``name`` in Unicode NFC, the form class names are stored in (macOS writes file names decomposed)."""
    return unicodedata.normalize("NFC", name)


def _fold(name: str) -> str:
    """The key class names are matched by: NFC, then case-folded."""
    return _nfc(name).casefold()


def _read_text(path: Path, what: str) -> str:
    """The text of a UTF-8 file, a leading byte order mark dropped.

    Raises:
        DataError: the file cannot be read or is not UTF-8 text.
    """
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{what} {path} must be UTF-8 text: line {line} holds byte 0x{exc.object[exc.start]:02x}, which is not "
            "UTF-8 (save it as UTF-8 text, not in another encoding or as a spreadsheet)"
        ) from None


def _list_folder(directory: Path) -> tuple[list[str], list[str]]:
    """The names of the folders and of the other entries in ``directory``, symbolic links followed.

    A folder that cannot be listed is logged and counts as empty.
    """
    folders, others = [], []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                (folders if _is_folder(entry) else others).append(entry.name)
    except OSError as exc:
        logger.warning("cannot list %s: %s", directory, exc.strerror)
    return folders, others


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_video(name: str, suffixes: set[str]) -> bool:
    return not _is_hidden(name) and os.path.splitext(name)[1].lower() in suffixes


def find_videos(root: Path, extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> list[Path]:
    """All video files under ``root``, recursively, sorted by relative path.

    Hidden files and folders (names starting with ``.``) and files with other extensions are ignored; extensions match
    case-insensitively. Symbolic links to folders are followed, but each real folder is searched once, by its
    shallowest path (the first in sorted order among equally deep ones): a link loop neither hangs nor lists a video
    twice, and a class folder keeps its videos even when a deeper link also leads to it.
    """
    root = Path(root)
    suffixes = {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}
    found = []
    searched: dict[str, Path] = {}
    queue = collections.deque([root])
    while queue:  # breadth first, so that the shallowest path to a folder is the one searched
        directory = queue.popleft()
        real = os.path.realpath(directory)
        if real in searched:
            logger.warning("%s is the folder %s again (a symbolic link): not searched twice", directory, searched[real])
            continue
        searched[real] = directory
        folders, others = _list_folder(directory)
        queue.extend(directory / name for name in sorted(folders) if not _is_hidden(name))
        found += [directory / name for name in others if _is_video(name, suffixes)]
    return sorted(found, key=lambda path: relative_posix(path, root))


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators."""
    return Path(path).relative_to(root).as_posix()


def stable_fraction(key: str, salt: str = "") -> float:
    """A number in [0, 1) derived from ``key`` by SHA-256: the same on every machine and Python version.

    The key is hashed as UTF-8; lone surrogates (how Python spells file-name bytes that are not UTF-8) are encoded as
    their three bytes instead of failing, which leaves the hash of every other string unchanged.
    """
    digest = hashlib.sha256(f"{salt}{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_validation(group: str, val_fraction: float) -> bool:
    """Whether ``group`` belongs to the validation split (about ``val_fraction`` of all groups)."""
    return stable_fraction(group, "split:") < val_fraction


def validation_groups(videos: Iterable[LabelledVideo], val_fraction: float) -> frozenset[str]:
    """The groups of the validation split: ``is_validation`` ones, plus one group of each class left without any.

    With few groups per class (7 groups and a fraction of 0.2) the hash alone leaves some classes with no validation
    clip. So a class with at least two groups and none in validation gives up its group with the smallest hash
    (still stable, and the same on every instance that lists the same videos). A class with one group keeps it
    for training. With ``val_fraction`` 0 there is no validation split at all.
    """
    if val_fraction <= 0:
        return frozenset()
    by_class: dict[str, set[str]] = collections.defaultdict(set)
    for video in videos:
        by_class[video.label].add(video.group)
    chosen = {group for groups in by_class.values() for group in groups if is_validation(group, val_fraction)}
    for groups in by_class.values():
        if len(groups) >= 2 and not groups & chosen:
            chosen.add(min(groups, key=lambda group: (stable_fraction(group, "split:"), group)))
    return frozenset(chosen)


def in_part(relpath: str, num_parts: int, part_index: int) -> bool:
    """Whether the video at ``relpath`` falls in part ``part_index`` of ``num_parts`` (stable hash of the path)."""
    return int(stable_fraction(relpath, "part:") * num_parts) == part_index


def _case_clashes(names: Sequence[str]) -> list[str]:
    """The names that another name of ``names`` equals when case is ignored."""
    folded = collections.Counter(_fold(name) for name in names)
    return sorted(name for name in names if folded[_fold(name)] > 1)


def _read_names(path: Path) -> list[str]:
    """The names of a class list file, one a line, in NFC; blank lines and ``#`` comments are ignored.

    Raises:
        DataError: unreadable, not UTF-8, empty, or a name listed twice.
    """
    return class_names(_read_text(path, "class list"), path, _nfc)


def _class_ind_names(lines: Sequence[str]) -> list[str] | None:
    """The names of a ``classInd.txt`` in number order; None when a line is not ``<number> <name>`` or names clash."""
    numbered = [NUMBERED_CLASS.match(line) for line in lines]
    if not all(numbered):
        return None
    names = [match["name"] for match in sorted(numbered, key=lambda match: int(match["number"]))]
    return None if _case_clashes(names) else names


def read_class_list(path: Path) -> ClassList:
    """Read a ``--classes`` file: one name per line, or UCF101's ``classInd.txt`` (``<number> <name>``).

    The file must be UTF-8 (a byte order mark is dropped); names are normalised to NFC. When every line reads
    ``<number> <name>``, the result is the ``classInd.txt`` reading and keeps the whole lines as the other reading
    (see ``ClassList``).

    Raises:
        DataError: unreadable, not UTF-8, empty, a name listed twice, or two names that differ only in case.
    """
    names = _read_names(Path(path))
    clashes = _case_clashes(names)
    if clashes:
        raise DataError(f"class list {path} has names that differ only in case: {', '.join(clashes)}")
    numbered = _class_ind_names(names)
    return ClassList(names) if numbered is None else ClassList(numbered, whole_lines=names)


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
    return _Candidate(path, relpath, _nfc(parts[0]), None)


def _label_by_ucf_name(path: Path, relpath: str) -> _Candidate | str:
    match = UCF_NAME.match(PurePosixPath(relpath).stem)
    if not match:
        return "name does not follow v_<Class>_g<NN>_c<NN>"
    return _Candidate(path, relpath, _nfc(match["label"]), None)


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
    odd = [rel for rel in relpaths if not UCF_NAME.match(PurePosixPath(rel).stem)]
    hint = ""
    if len(odd) < len(relpaths):  # mostly UCF101 names: say which files break the pattern
        shown = ", ".join(odd[:3]) + (", ..." if len(odd) > 3 else "")
        hint = (
            f"; {len(relpaths) - len(odd)} of {len(relpaths)} names follow v_<Class>_g<NN>_c<NN> but not {shown}: "
            "rename or remove those, or pass --label-from ucf to skip them"
        )
    raise ConfigError(f"cannot tell the classes of the videos: {LAYOUTS_HELP}{hint}")


@dataclass(frozen=True)
class ManifestRow:
    """One row of a manifest CSV."""

    relpath: str
    label: str
    group: str | None


def _normalise_relpath(text: str) -> str:
    """A manifest path with ``/`` separators, ``.`` and ``..`` resolved on the text (``a/../b`` -> ``b``)."""
    return posixpath.normpath(text.strip().replace("\\", "/"))


def _manifest_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """Non-blank, non-comment rows with their line numbers, the optional header row dropped."""
    text = _read_text(path, "manifest")
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
    """Read a manifest CSV of ``path,label[,group]`` rows (UTF-8; labels normalised to NFC).

    Raises:
        DataError: unreadable or not UTF-8, a row without path or label, a path listed twice, or no rows.
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
        rows.append(ManifestRow(relpath, _nfc(cells[1]), cells[2] if len(cells) > 2 and cells[2] else None))
    if not rows:
        raise DataError(f"manifest {path} lists no videos (rows: path,label[,group])")
    return rows


OUTSIDE_INPUT = "outside the input directory: not read (pass --allow-outside-input to read files outside it)"
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (symbolic links followed), e.g. ``"a named pipe (FIFO)"``,
    ``"a symbolic link to a character device (/dev/zero)"``, ``"missing"``; None for a regular file.

    Only ``stat`` is called: the file is never opened (opening a named pipe blocks until a writer comes).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for is_kind, name in _FILE_KINDS if is_kind(mode)), "not a regular file")
    return f"a symbolic link to {kind} ({os.path.realpath(path)})" if os.path.islink(path) else kind


def _file_skip(relpath: str, path: Path, missing: str) -> SkippedFile | None:
    """Why the video at ``path`` is skipped (``missing`` when it does not exist), None when it is a regular file."""
    kind = not_a_file(path)
    if kind is None:
        return None
    return SkippedFile(relpath, missing if kind == "missing" else f"is {kind}, not a video file", bad=True)


def _from_manifest(
    root: Path, manifest: Path, relpaths: Sequence[str], allow_outside: bool = False
) -> tuple[list[_Candidate], list[SkippedFile]]:
    candidates, skipped = [], []
    rows = [_inside(root, row) for row in read_manifest_csv(manifest)]
    if len({row.relpath for row, _ in rows}) < len(rows):
        raise DataError(f"{manifest} lists a video twice (once by its path relative to {root}, once by its full path)")
    for row, inside in rows:
        if not inside and not allow_outside:  # refused on the text alone: the reply says nothing about the file
            skipped.append(SkippedFile(row.relpath, OUTSIDE_INPUT, bad=True))
            continue
        path = root / row.relpath
        problem = _file_skip(row.relpath, path, f"listed in {Path(manifest).name} but missing")
        if problem is None:
            candidates.append(_Candidate(path, row.relpath, row.label, row.group))
        else:
            skipped.append(problem)
    listed = {row.relpath for row, _ in rows}
    skipped += [SkippedFile(rel, f"not listed in {Path(manifest).name}") for rel in relpaths if rel not in listed]
    return candidates, skipped


def _inside(root: Path, row: ManifestRow) -> tuple[ManifestRow, bool]:
    """``row`` with a full path under ``root`` made relative to it (the paths the shards record and the split hashes
    must not depend on where the data set lies), and whether it lies under ``root``.

    Decided on the text alone (``..`` already resolved by ``_normalise_relpath``), never by looking at the file, so the
    answer is the same whether the file exists or not. Symbolic links inside the root are the root's own business.
    """
    if not PurePosixPath(row.relpath).is_absolute():
        return row, row.relpath != ".." and not row.relpath.startswith("../")
    for base in dict.fromkeys((os.path.normpath(os.path.abspath(root)), os.path.realpath(root))):
        relpath = posixpath.relpath(row.relpath, base)
        if relpath != ".." and not relpath.startswith("../") and relpath != ".":
            return ManifestRow(relpath, row.label, row.group), True
    return row, False


def _from_layout(
    source: str, files: Sequence[Path], relpaths: Sequence[str]
) -> tuple[list[_Candidate], list[SkippedFile]]:
    labeller = _label_by_folder if source == "folder" else _label_by_ucf_name
    candidates, skipped = [], []
    for path, relpath in zip(files, relpaths):
        problem = _file_skip(relpath, path, "vanished while the input was listed")
        if problem is not None:
            skipped.append(problem)
            continue
        result = labeller(path, relpath)
        if isinstance(result, str):
            skipped.append(SkippedFile(relpath, result))
        else:
            candidates.append(result)
    return candidates, skipped


def _canonical_classes(
    candidates: Sequence[_Candidate], classes: Sequence[str] | None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The class list and a map from folded label (``_fold``) to its spelling in that list."""
    if classes:
        return tuple(classes), {_fold(name): name for name in classes}
    spellings: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for candidate in candidates:
        spellings[_fold(candidate.label)][candidate.label] += 1
    canon = {fold: min(counts, key=lambda name: (-counts[name], name)) for fold, counts in spellings.items()}
    return tuple(sorted(canon.values())), canon


def _count_labelled(labels: collections.Counter[str], names: Iterable[str]) -> int:
    """How many videos of ``labels`` (folded label -> videos) have a class among ``names``."""
    return sum(labels[_fold(name)] for name in names)


def _choose_class_reading(candidates: Sequence[_Candidate], classes: Sequence[str] | None) -> Sequence[str] | None:
    """Of the two readings of a numbered ``--classes`` file (``ClassList``), the one that labels more videos.

    A tie keeps the ``classInd.txt`` reading.
    """
    if not isinstance(classes, ClassList) or not classes.whole_lines:
        return classes
    labels = collections.Counter(_fold(candidate.label) for candidate in candidates)
    if _count_labelled(labels, classes.whole_lines) > _count_labelled(labels, classes):
        logger.info("--classes: each line is a class name (%r, ...), not UCF101 classInd.txt", classes.whole_lines[0])
        return classes.whole_lines
    logger.info("--classes: read as UCF101 classInd.txt (<number> <name>): %r, ...", classes[0])
    return classes


def _group_of(candidate: _Candidate, label: str) -> str:
    if candidate.group:
        return candidate.group
    group = ucf_group(PurePosixPath(candidate.relpath).stem)
    return f"{label}_g{group}" if group else candidate.relpath


def _check_class_names(classes: Sequence[str], candidates: Sequence[_Candidate], source: str, root: Path) -> None:
    """Refuse a class name that ``classes.txt`` cannot hold (``shards.class_name_problem``), naming where it came
    from: the class folder, the file name or the manifest label.

    Raises:
        DataError: one line, saying how to rename.
    """
    for name in classes:
        problem = class_name_problem(name)
        if problem is None:
            continue
        example = next((c for c in candidates if _fold(c.label) == _fold(name)), None)
        where, fix = f"the class {shown_name(name)}", "change it"
        if example is not None and source == "folder":
            folder = example.relpath.split("/")[0]
            where, fix = f"the class folder {shown_name(folder)} in {root}", "rename the folder"
        elif example is not None and source == "ucf":
            where, fix = f"the class {shown_name(name)} of {shown_name(example.relpath)}", "rename the file"
        elif example is not None:
            where, fix = f"the label {shown_name(name)} of {shown_name(example.relpath)}", "change it in the manifest"
        raise DataError(
            f"{where} {problem}, so classes.txt (one class name per line) cannot hold it: {fix} "
            "(a space inside a name is fine)"
        )


def _no_labelled_videos(root: Path, skipped: Sequence[SkippedFile]) -> DataError:
    example = f" (e.g. {skipped[0].relpath}: {skipped[0].reason})" if skipped else ""
    return DataError(f"no labelled video under {root}: {len(skipped)} files skipped{example}; {LAYOUTS_HELP}")


def discover(
    root: Path,
    label_from: str = "auto",
    manifest: Path | None = None,
    classes: Sequence[str] | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    allow_outside: bool = False,
) -> Discovery:
    """Find the videos under ``root`` and label them.

    Args:
        root: the input directory.
        label_from: ``auto``, ``folder``, ``ucf`` or ``manifest`` (see the module docstring).
        manifest: a CSV of ``path,label[,group]`` rows, paths relative to ``root``.
        classes: a fixed class list (label ``i`` = ``classes[i]``); videos of other classes are skipped. A
            ``ClassList`` from a numbered file is resolved against the videos (see ``ClassList``).
        extensions: video file extensions to look for.
        allow_outside: read manifest rows whose path leaves ``root`` (refused by default).

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
        candidates, skipped = _from_manifest(root, Path(manifest), relpaths, allow_outside)
    else:
        candidates, skipped = _from_layout(source, files, relpaths)
    classes = _choose_class_reading(candidates, classes)
    class_names, canon = _canonical_classes(candidates, classes)
    _check_class_names(class_names, candidates, source, root)
    videos = []
    for candidate in candidates:
        label = canon.get(_fold(candidate.label))
        if label is None:
            skipped.append(SkippedFile(candidate.relpath, f"class {candidate.label!r} is not in the --classes list"))
            continue
        videos.append(LabelledVideo(candidate.path, candidate.relpath, label, _group_of(candidate, label)))
    if not videos:
        raise _no_labelled_videos(root, skipped)
    videos.sort(key=lambda video: video.relpath)
    skipped.sort(key=lambda item: item.relpath)
    return Discovery(tuple(videos), class_names, tuple(skipped), source)
