"""Processing: labelled videos in, uint8 clip shards out (the library behind ``video3dcnn process``).

Order of work, on each host:

1. Lock this host's output (``.video3dcnn-<host>.lock`` in the output directory: a second run into the same output
   under the same name fails at once, naming the first), then remove this host's previous manifest first, then its
   previous shards, so that nothing left over looks complete.
2. Discover and label the videos (``discovery``), keep this instance's part of a replicated input (``--num-parts``).
3. Decode with one single-threaded decoder per worker (``pool``: child processes, and a thread of this process up to
   8 workers), in input order: results come back in the order they were submitted, through a bounded window, so the
   output is the same whatever the number of workers and memory stays bounded. This process alone writes shards
   (``<host>-<NNNNN>.npz``, each written to a temporary name and renamed); a run that fails or is interrupted drops
   the clips it had not written yet.
4. Check the bad fraction; write ``classes.txt``, ``preview.png`` and, last, ``manifest-<host>.json``. Readers only
   trust shards a manifest lists, so a killed run (or a failed one) never looks complete. Every shard carries the
   run's id (its ZIP comment), which the manifest records: before the manifest is written, each listed shard is
   checked to be this run's, so a manifest never lists a shard that another run wrote.

A worker that dies (killed by the system, e.g. out of memory) stops the run with a one-line error instead of hanging.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from video3dcnn import __version__, pool
from video3dcnn.config import ClipSpec, as_dict
from video3dcnn.decoding import FROZEN_WARNING, DecodedVideo, decode_clips, frozen
from video3dcnn.discovery import (
    Discovery,
    LabelledVideo,
    SkippedFile,
    discover,
    in_part,
    read_class_list,
    stable_fraction,
    validation_groups,
)
from video3dcnn.errors import DataError, OutputError, VideoDecodeError
from video3dcnn.files import FileLock, LockedError, write_json_atomic
from video3dcnn.pool import WorkerDiedError  # noqa: F401 - raised by process() through ordered_map
from video3dcnn.preview import MAX_CLASSES, MAX_PIXELS, shown_classes, thumbnail, write_preview
from video3dcnn.process_options import ProcessOptions
from video3dcnn.progress import Progress
from video3dcnn.shards import (
    SCHEMA_VERSION,
    SHARD_PATTERN,
    Shard,
    deflate_clip,
    manifest_name,
    read_run_id,
    shard_name,
    write_classes,
    write_shard,
)
from video3dcnn.signals import handling_signal

logger = logging.getLogger(__name__)

SHARD_TARGET_BYTES = 64 * 2**20  # default shard size: about 64 MiB of uncompressed clips
PREVIEW_CLIPS = 2


@dataclass(frozen=True)
class ProcessResult:
    """What a run wrote."""

    manifest_path: Path
    manifest: dict


def _init_worker() -> None:
    """Worker set-up: the parent handles Ctrl-C; OpenCV's own thread pool stays off (one process per core)."""
    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def decode_task(
    task: tuple[str, ClipSpec, bool, int],
) -> tuple[DecodedVideo | None, list[bytes] | None, str | None]:
    """Decode one video in a worker: ``(clips, pieces, None)``, or ``(None, None, reason)`` when it cannot be used.

    With compression on, the worker also deflates each clip (``shards.deflate_clip``): the parent only joins the
    pieces, so it never becomes the bottleneck however many workers feed it.
    """
    import cv2

    path, spec, compress, max_pixels = task
    try:
        decoded = decode_clips(Path(path), spec, max_pixels)
    except VideoDecodeError as exc:
        return None, None, str(exc)
    except cv2.error as exc:  # OpenCV refusing one odd file must not end a job of thousands
        return None, None, f"{path}: OpenCV error: {' '.join(str(exc).split())}"
    return decoded, [deflate_clip(clip) for clip in decoded.clips] if compress else None, None


def ordered_map(function: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``map(function, items)`` over ``workers`` decoders, in input order (``pool.ordered_map``): child processes
    start from a fork server that has already imported the decoder, and ignore Ctrl-C."""
    context = _pool_context() if workers > 1 else None  # one worker decodes in this thread: no fork server
    return pool.ordered_map(function, items, workers, context, _init_worker)


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers start from a fork server that has already imported the decoder (fast, and safe with threads in this
    process, unlike a plain fork); spawn where there is no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["video3dcnn.processing"])
    _start_fork_server()
    return context


def _start_fork_server() -> None:
    """Start the fork server (if it is not running) with Ctrl-C ignored from its first instruction.

    The fork server ignores SIGINT itself only once its preload has been imported (about half a second), so a Ctrl-C
    sent to the process group before then printed its KeyboardInterrupt traceback. A signal ignored when a program
    starts stays ignored, so the server is started while this process ignores SIGINT (a few milliseconds).
    """
    from multiprocessing import forkserver

    with handling_signal(signal.SIGINT, signal.SIG_IGN):
        forkserver.ensure_running()


def default_workers() -> int:
    """All cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ShardWriter:
    """Buffers clips and writes shards ``<host>-<NNNNN>.npz`` of about ``shard_size`` clips.

    A video's clips never straddle two shards, so a shard may exceed ``shard_size`` by less than one video's clips.
    Shards are written by a background thread, one at a time, while the caller goes on collecting the next one (the
    workers keep decoding meanwhile). ``close()`` waits for the last write; ``entries`` then holds the manifest entry
    of every shard.
    """

    def __init__(
        self, directory: Path, host: str, shard_size: int, compress: bool = True, run_id: str | None = None
    ) -> None:
        self.directory = directory
        self.host = host
        self.shard_size = shard_size
        self.compress = compress
        self.run_id = run_id
        self.entries: list[dict] = []
        self._buffer: list[tuple[DecodedVideo, list[bytes] | None, int, str, bool, str]] = []
        self._clips = 0
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shard-writer")
        self._writing: concurrent.futures.Future | None = None

    def add(
        self, decoded: DecodedVideo, pieces: list[bytes] | None, label: int, group: str, is_val: bool, relpath: str
    ) -> None:
        """Queue the clips of one video (and their deflated pieces); writes a shard once enough clips are queued."""
        self._buffer.append((decoded, pieces, label, group, is_val, relpath))
        self._clips += len(decoded.clips)
        if self._clips >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Hand the queued clips to the writing thread as one shard (no-op when nothing is queued)."""
        if not self._buffer:
            return
        counts = [len(decoded.clips) for decoded, *_ in self._buffer]
        shard = Shard(
            clips=np.concatenate([decoded.clips for decoded, *_ in self._buffer]),
            labels=np.repeat([item[2] for item in self._buffer], counts).astype(np.int32),
            groups=np.repeat(np.array([item[3] for item in self._buffer], dtype=str), counts),
            is_val=np.repeat([item[4] for item in self._buffer], counts).astype(bool),
            paths=np.repeat(np.array([item[5] for item in self._buffer], dtype=str), counts),
            frame_indices=np.concatenate([decoded.frame_indices for decoded, *_ in self._buffer]),
        )
        pieces = [piece for _, pieces, *_ in self._buffer for piece in pieces] if self.compress else None
        name = shard_name(self.host, len(self.entries))
        validation = int(shard.is_val.sum())
        entry = {"file": name, "clips": len(shard), "train": len(shard) - validation, "validation": validation}
        self.entries.append(entry)
        self._buffer, self._clips = [], 0
        self._wait()  # at most one shard in flight: memory stays bounded by two shards
        self._writing = self._thread.submit(self._write, entry, shard, pieces)

    def _write(self, entry: dict, shard: Shard, pieces: list[bytes] | None) -> None:
        with _writing(self.directory):
            entry["bytes"] = write_shard(self.directory / entry["file"], shard, self.compress, pieces, self.run_id)

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()  # re-raises a failed write here

    def close(self, write_queued: bool = True) -> None:
        """Write what is queued, wait for the writing thread and stop it.

        ``write_queued=False`` (a run that failed or was interrupted): the queued clips are dropped rather than
        written into a shard no manifest will list, and a failure of the write in progress is not raised again.
        """
        try:
            if write_queued:
                self.flush()
                self._wait()
            else:
                with contextlib.suppress(Exception):
                    self._wait()
        finally:
            self._thread.shutdown(wait=True)


def default_shard_size(spec: ClipSpec) -> int:
    """Clips per shard for about ``SHARD_TARGET_BYTES`` of uncompressed clips."""
    return max(1, SHARD_TARGET_BYTES // int(np.prod(spec.shape)))


@dataclass
class _Tally:
    """Counts, skipped files and preview clips gathered while decoding."""

    classes: tuple[str, ...]
    clips: dict[str, collections.Counter] = field(
        default_factory=lambda: {"train": collections.Counter(), "validation": collections.Counter()}
    )
    videos: dict[str, collections.Counter] = field(
        default_factory=lambda: {"train": collections.Counter(), "validation": collections.Counter()}
    )
    groups: dict[str, set] = field(default_factory=lambda: {"train": set(), "validation": set()})
    methods: collections.Counter = field(default_factory=collections.Counter)
    skipped: list[SkippedFile] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)  # relative paths of videos whose sampled frames are all the same
    preview: dict[str, list[np.ndarray]] = field(default_factory=lambda: collections.defaultdict(list))
    previewed: tuple[str, ...] = ()  # the classes the preview shows (preview.shown_classes): only theirs are kept
    decoded: int = 0

    def add(self, video: LabelledVideo, decoded: DecodedVideo, split: str) -> None:
        """Count one decoded video."""
        self.decoded += 1
        self.clips[split][video.label] += len(decoded.clips)
        self.videos[split][video.label] += 1
        self.groups[split].add(video.group)
        self.methods[decoded.method] += 1
        if video.label in self.previewed and len(self.preview[video.label]) < PREVIEW_CLIPS:
            self.preview[video.label].append(thumbnail(decoded.clips[0]))

    @property
    def bad(self) -> list[SkippedFile]:
        """Skipped files that count against ``--max-bad-fraction`` (damaged, undecodable, listed but missing)."""
        return [item for item in self.skipped if item.bad]

    @property
    def attempted(self) -> int:
        """Videos this run tried to use: decoded ones plus bad ones."""
        return self.decoded + len(self.bad)

    def per_class(self, counter: collections.Counter) -> dict[str, int]:
        """``counter`` as a class -> count dict in class order, zeros included."""
        return {name: int(counter[name]) for name in self.classes}


def input_file(text: str, input_dir: Path, option: str) -> Path:
    """Resolve a file option: as given, else relative to the input directory.

    Raises:
        DataError: the file is in neither place.
    """
    path = Path(text)
    if path.is_file():
        return path
    if not path.is_absolute() and (input_dir / path).is_file():
        return input_dir / path
    raise DataError(f"{option} {text}: no such file (looked in the current directory and in {input_dir})")


def _discover(input_dir: Path, options: ProcessOptions) -> Discovery:
    manifest = input_file(options.manifest, input_dir, "--manifest") if options.manifest else None
    classes = read_class_list(input_file(options.classes, input_dir, "--classes")) if options.classes else None
    return discover(
        input_dir, options.label_from, manifest, classes, options.extension_list(), options.allow_outside_input
    )


def shard_order(videos: Sequence[LabelledVideo]) -> list[LabelledVideo]:
    """The videos in a stable pseudo-random order (SHA-256 of the relative path).

    Sorted paths would fill each shard with one or two classes, and the training loader shuffles within a window of
    shards: on data sets larger than that window, batches would then see few classes. Hashing mixes the classes
    into every shard while keeping the output identical across runs, machines and worker counts.
    """
    return sorted(videos, key=lambda video: (stable_fraction(video.relpath, "order:"), video.relpath))


def _my_part(found: Discovery, options: ProcessOptions) -> tuple[list[LabelledVideo], list[SkippedFile]]:
    """This instance's videos and skipped files when a replicated input is split into parts, one per instance."""
    if not options.num_parts or options.num_parts == 1:
        return list(found.videos), list(found.skipped)
    mine = lambda relpath: in_part(relpath, options.num_parts, options.part_index)  # noqa: E731
    videos = [video for video in found.videos if mine(video.relpath)]
    logger.info(
        "part %d of %d takes %d of %d videos",
        options.part_index,
        options.num_parts,
        len(videos),
        len(found.videos),
    )
    return videos, [item for item in found.skipped if mine(item.relpath)]


@contextlib.contextmanager
def _writing(output_dir: Path) -> Iterator[None]:
    """Turn a failure to write into ``output_dir`` (no permission, a full disk, a file in the way) into one line."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or output_dir
        raise OutputError(f"cannot write {where}: {exc.strerror or exc}; check the --output directory") from exc


def _is_shard_of(name: str, host: str) -> bool:
    """Whether ``name`` is the file name of a shard of ``host`` (``algo-1`` does not own ``algo-1-part0-00000.npz``)."""
    return (shard := SHARD_PATTERN.match(name)) is not None and shard["host"] == host


def prepare_output(output_dir: Path) -> None:
    """Create ``output_dir`` if need be and check that it can be written (before any video is decoded).

    Raises:
        OutputError: a file in the way, no permission, a read-only or full file system.
    """
    with _writing(output_dir):
        if output_dir.exists() and not output_dir.is_dir():
            raise OutputError(f"--output {output_dir} is a file, not a directory")
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir, prefix=".video3dcnn-probe-"):
            pass


def lock_name(host: str) -> str:
    """The lock file of ``host``'s output: held while a run writes that host's files."""
    return f".video3dcnn-{host}.lock"


def lock_output(output_dir: Path, host: str, run_id: str) -> FileLock:
    """Lock ``host``'s files in ``output_dir`` for this run (``files.FileLock``: released however the run ends).

    Runs under other names (other instances, other ``--num-parts`` parts) write other files and are not held up.

    Raises:
        OutputError: another run is writing ``host``'s files there (named, with its process and machine).
    """
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    holder = f"run {run_id}, process {os.getpid()} on {socket.gethostname()}, started {started}"
    try:
        with _writing(output_dir):
            return FileLock.acquire(output_dir / lock_name(host), holder)
    except LockedError as exc:
        raise OutputError(
            f"another 'video3dcnn process' is writing {host}'s files in {output_dir} ({exc.holder or 'unknown run'}): "
            "wait for it to end, or give this run another --output"
        ) from None


def clear_previous_output(output_dir: Path, host: str, hosts: Sequence[str] = ()) -> None:
    """Delete what an earlier run of ``host`` wrote in ``output_dir``: the manifest first, so that no stale state
    looks complete, then its shards and its preview.

    Raises:
        OutputError: a file cannot be removed.
    """
    with _writing(output_dir):
        (output_dir / manifest_name(host)).unlink(missing_ok=True)
        old = [path for path in output_dir.glob(f"{host}-*.npz") if _is_shard_of(path.name, host)]
        for path in old:
            path.unlink()
        (output_dir / preview_name(host, hosts)).unlink(missing_ok=True)
        for tmp in output_dir.glob(".*.tmp"):  # a run killed while writing: .<final name>.<random>.tmp
            final = tmp.name[1:].rsplit(".", 2)[0]
            if final in (manifest_name(host), preview_name(host, hosts)) or _is_shard_of(final, host):
                tmp.unlink(missing_ok=True)
    if old:
        logger.info("removed %d shards of an earlier run of %s in %s", len(old), host, output_dir)


def _decode_all(
    videos: Sequence[LabelledVideo], spec: ClipSpec, workers: int, options: ProcessOptions
) -> Iterator[tuple[LabelledVideo, DecodedVideo | None, list[bytes] | None, str | None]]:
    tasks = ((str(video.path), spec, options.compress, options.max_pixels) for video in videos)
    with Progress(len(videos), "videos") as progress:
        for video, (decoded, pieces, reason) in zip(videos, ordered_map(decode_task, tasks, workers)):
            progress.update()
            yield video, decoded, pieces, reason


@dataclass
class _Run:
    """The state of one run: where it writes, what it found, what it has written and counted so far."""

    output_dir: Path
    host: str
    hosts: Sequence[str]
    options: ProcessOptions
    found: Discovery
    writer: ShardWriter
    tally: _Tally
    run_id: str
    started: float = field(default_factory=time.monotonic)
    validation: frozenset[str] = field(init=False)  # the groups of the validation split, from ``found``

    def __post_init__(self) -> None:
        self.validation = validation_groups(self.found.videos, self.options.val_fraction)  # all videos, every part

    def collect(
        self, video: LabelledVideo, decoded: DecodedVideo | None, pieces: list[bytes] | None, reason: str | None
    ) -> None:
        """Count one decoding result and queue its clips, or record why the video was skipped."""
        if decoded is None:
            logger.warning("skipped %s: %s", video.relpath, reason)
            self.tally.skipped.append(SkippedFile(video.relpath, reason or "cannot be decoded", bad=True))
            return
        split = "validation" if video.group in self.validation else "train"
        if frozen(decoded):
            logger.warning("%s: %s", video.relpath, FROZEN_WARNING)
            self.tally.frozen.append(video.relpath)
        self.tally.add(video, decoded, split)
        label = self.found.label_index(video.label)
        self.writer.add(decoded, pieces, label, video.group, split == "validation", video.relpath)


def _check_outcome(tally: _Tally, options: ProcessOptions) -> None:
    """Raise DataError when nothing decoded or too much of the input was bad."""
    bad, attempted = tally.bad, tally.attempted
    example = f" (e.g. {bad[0].relpath}: {bad[0].reason})" if bad else ""
    if attempted and not tally.decoded:
        raise DataError(f"none of the {attempted} videos could be decoded{example}; check the input files")
    fraction = len(bad) / attempted if attempted else 0.0
    if fraction > options.max_bad_fraction:
        raise DataError(
            f"{len(bad)} of {attempted} videos could not be used ({fraction:.1%} > --max-bad-fraction "
            f"{options.max_bad_fraction:.1%}){example}; the log lists them all; no manifest was written"
        )


def process(
    input_dir: Path, output_dir: Path, options: ProcessOptions, host: str, hosts: Sequence[str] = ()
) -> ProcessResult:
    """Turn the labelled videos under ``input_dir`` into clip shards in ``output_dir``.

    Args:
        input_dir: videos in one of the layouts of ``discovery``.
        output_dir: where shards, ``classes.txt``, the preview and ``manifest-<host>.json`` go.
        options: resolved options (``num_parts``/``part_index`` already set for this instance).
        host: this instance's name, used in every file name it writes.
        hosts: all instances of the job (recorded in the manifest).

    Returns:
        The manifest written and its path.

    Raises:
        ConfigError, DataError: bad options or input, nothing decoded, or too many bad videos (no manifest written).
        OutputError: the output cannot be written, or another run is writing ``host``'s files there.
        WorkerDiedError: a decoding process was killed.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    found = _discover(input_dir, options)
    videos, skipped = _my_part(found, options)
    prepare_output(output_dir)
    run_id = fingerprint(options, host, hosts, found.classes, videos)
    with lock_output(output_dir, host, run_id):
        clear_previous_output(output_dir, host, hosts)
        spec = options.clip_spec()
        writer = ShardWriter(output_dir, host, options.shard_size or default_shard_size(spec), options.compress, run_id)
        shown = shown_classes(spec.shape, len(found.classes), PREVIEW_CLIPS) if options.preview else 0
        tally = _Tally(found.classes, skipped=skipped, previewed=found.classes[:shown])
        return _decode_and_write(_Run(output_dir, host, hosts, options, found, writer, tally, run_id), videos)


def fingerprint(
    options: ProcessOptions, host: str, hosts: Sequence[str], classes: Sequence[str], videos: Sequence[LabelledVideo]
) -> str:
    """The run id: a hash of everything that decides this host's output (package version, options, host names,
    classes, and each video's path, label, group and size).

    Shards carry it so that a manifest never lists a shard another run wrote; being derived from the inputs rather
    than drawn at random, it keeps the output deterministic: the same input gives byte-identical shards, on any
    machine. Two runs that share it write the same bytes, so neither can spoil the other's output.
    """
    digest = hashlib.sha256()
    facts = {
        "version": __version__,
        "options": {key: value for key, value in as_dict(options).items() if key != "workers"},  # same bytes
        "host": host,
        "hosts": list(hosts),
        "classes": list(classes),
    }
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode("utf-8"))
    for video in sorted(videos, key=lambda v: v.relpath):
        size = _size(video.path)
        digest.update(json.dumps([video.relpath, video.label, video.group, size]).encode("ascii"))
    return digest.hexdigest()[:32]


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _decode_and_write(run: _Run, videos: Sequence[LabelledVideo]) -> ProcessResult:
    """Decode ``videos`` into shards and write the outputs; on any failure leave none of this run's shards."""
    options, spec = run.options, run.options.clip_spec()
    videos = shard_order(videos)
    if not videos:
        logger.warning(
            "no videos for this instance (%d in the input); writing an empty manifest", len(run.found.videos)
        )
    workers = max(1, min(options.workers or default_workers(), len(videos)))
    logger.info("decoding %d videos with %d workers into %s clips %s", len(videos), workers, spec.sampling, spec.shape)
    try:
        with contextlib.closing(_decode_all(videos, spec, workers, options)) as results:  # stops the workers
            for video, decoded, pieces, reason in results:
                run.collect(video, decoded, pieces, reason)
        _check_outcome(run.tally, options)
        run.writer.close()
        return _finish(run)
    except BaseException:  # failed, interrupted or terminated before its manifest was written
        run.writer.close(write_queued=False)  # no write is left running (an unfinished one leaves no file)
        _remove_own_shards(run)
        raise


def _manifest_run_id(path: Path) -> str | None:
    """The run id a manifest records, None when there is no readable manifest."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def _remove_own_shards(run: _Run) -> None:
    """Remove the shards this run wrote, unless its manifest lists them; never another run's (checked by run id)."""
    if _manifest_run_id(run.output_dir / manifest_name(run.host)) == run.run_id:
        return
    for entry in run.writer.entries:
        path = run.output_dir / entry["file"]
        with contextlib.suppress(OSError):
            if read_run_id(path) == run.run_id:
                path.unlink()


def _check_own_shards(run: _Run) -> None:
    """Refuse to write a manifest that would list a shard this run did not write (or that is gone).

    Raises:
        OutputError: naming the shard; another run wrote into the same output under the same name.
    """
    for entry in run.writer.entries:
        path = run.output_dir / entry["file"]
        try:
            found = read_run_id(path)
        except FileNotFoundError:
            found = "missing"
        except OSError as exc:
            raise OutputError(f"cannot read {path}: {exc.strerror or exc}") from None
        if found != run.run_id:
            what = {"missing": "was removed", None: "was replaced by another run's"}.get(
                found, f"was replaced by run {found}"
            )
            raise OutputError(
                f"{path} {what} while run {run.run_id} wrote it: another run is writing into {run.output_dir} under "
                f"the name {run.host}; no manifest was written: run one at a time, or give each its own --output"
            )


def preview_name(host: str, hosts: Sequence[str]) -> str:
    """``preview.png``, or ``preview-<host>.png`` when several instances write into one output."""
    return f"preview-{host}.png" if len(hosts) > 1 else "preview.png"


def _counts(tally: _Tally, writer: ShardWriter) -> dict:
    return {
        "videos": {
            "attempted": tally.attempted,
            "decoded": tally.decoded,
            "bad": len(tally.bad),
            "skipped": len(tally.skipped),
        },
        "clips": {split: sum(counter.values()) for split, counter in tally.clips.items()},
        "clips_per_class": {split: tally.per_class(counter) for split, counter in tally.clips.items()},
        "videos_per_class": {split: tally.per_class(counter) for split, counter in tally.videos.items()},
        "groups": {split: len(groups) for split, groups in tally.groups.items()},
        "shards": len(writer.entries),
        "bytes": sum(entry["bytes"] for entry in writer.entries),
    }


def build_manifest(run: _Run, preview: dict | None = None) -> dict:
    """The manifest of one host's output (``load_index`` reads schema_version, classes, clip_spec and shards);
    ``preview`` is what ``_write_preview`` wrote."""
    options, tally = run.options, run.tally
    return {
        "schema_version": SCHEMA_VERSION,
        "package": "video3dcnn",
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": run.host,
        "hosts": list(run.hosts) or [run.host],
        "run_id": run.run_id,
        "classes": list(run.found.classes),
        "clip_spec": options.clip_spec().to_dict(),
        "label_source": run.found.label_source,
        "split": {
            "by": "group",
            "method": "sha256('split:' + group) < val_fraction",
            "val_fraction": options.val_fraction,
        },
        "options": {key: value for key, value in as_dict(options).items() if key != "workers"},  # same bytes
        "counts": _counts(tally, run.writer),
        "decode_methods": dict(sorted(tally.methods.items())),
        "seconds": round(time.monotonic() - run.started, 3),
        "shards": run.writer.entries,
        "skipped": [
            {"path": item.relpath, "reason": item.reason} for item in sorted(tally.skipped, key=lambda s: s.relpath)
        ],
        "warnings": [{"path": relpath, "reason": FROZEN_WARNING} for relpath in sorted(tally.frozen)],
        "preview": preview,
    }


def _write_preview(run: _Run) -> dict | None:
    """Write the preview of the classes it shows (``preview.shown_classes``); return its manifest entry, or None when
    there is no preview."""
    shown, classes = run.tally.previewed, run.found.classes
    name = preview_name(run.host, run.hosts)
    if not run.options.preview or write_preview(run.output_dir / name, shown, run.tally.preview) is None:
        return None
    if len(shown) < len(classes):
        logger.info(
            "%s shows the first %d of the %d classes (a preview shows at most %d classes and %d megapixels)",
            name, len(shown), len(classes), MAX_CLASSES, MAX_PIXELS // 2**20,
        )  # fmt: skip
    return {"file": name, "classes_shown": len(shown)}


def _finish(run: _Run) -> ProcessResult:
    """Write classes.txt and the preview, then the manifest, last."""
    tally, classes = run.tally, run.found.classes
    path = run.output_dir / manifest_name(run.host)
    with _writing(run.output_dir):
        write_classes(run.output_dir, classes)
        manifest = build_manifest(run, _write_preview(run))
        _check_own_shards(run)
        write_json_atomic(path, manifest)
    clips, seconds = manifest["counts"]["clips"], manifest["seconds"]
    logger.info(
        "%d videos -> %d train + %d validation clips in %d shards (%s); %d skipped; %.1f s, %.2f videos/s",
        tally.decoded, clips["train"], clips["validation"], len(run.writer.entries), run.output_dir,
        len(tally.skipped), seconds, tally.decoded / max(seconds, 1e-9),
    )  # fmt: skip
    if tally.frozen:
        logger.warning(
            "%d of the videos gave clips whose frames are all the same picture (listed under 'warnings' in %s): "
            "still videos, or interlaced video that OpenCV 4.13 and later decode blank; see docs/processing.md",
            len(tally.frozen), path.name,
        )  # fmt: skip
    for split, counter in tally.clips.items():
        empty = [name for name in classes if not counter[name]]
        if empty and tally.decoded:
            logger.warning("no %s clips for %d classes: %s", split, len(empty), ", ".join(empty[:10]))
    return ProcessResult(path, manifest)
