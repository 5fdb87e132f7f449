"""Streaming clip loader: a ``keras.utils.PyDataset`` over the shards that ``video3dcnn process`` writes.

Memory is bounded by the window size (plus one batch per queued step), never by the data set: each epoch the shard
order is shuffled, consecutive shards are grouped into *windows* of at least ``buffer_clips`` clips, and the clips of
one window are shuffled together. At most three windows are held decoded: the one in use, the next (decoded in the
background, its shards in parallel threads, while the current one is consumed) and the previous (for batches that
loader threads finish late). Clips stay uint8 (the model rescales); shards are read through ``shards.read_shard``
(no pickle, one-call inflate). Only numpy and ``keras.utils`` are used, so the loader works with every Keras
backend.

Batch ``i`` of an epoch is a pure function of ``(seed, epoch, i)``, so loader threads may fetch batches in any order
and a resumed run sees the same batches as an uninterrupted one.

In a job with several hosts or devices (``partition.Share``), each host's loader reads only its contiguous part of the
subset's clips, runs the job-wide number of steps, and yields ``(clips, labels, sample_weights)`` batches of a fixed
size, the positions past its last clip filled with its own clips at weight 0.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from video3dcnn.errors import DataError
from video3dcnn.partition import Share, slice_rows
from video3dcnn.shards import DatasetIndex, check_same_data, read_shard

logger = logging.getLogger(__name__)

SUBSETS = ("train", "validation", "all")
CACHED_WINDOWS = 3  # the window in use, the next one (prefetched) and the previous one (late batches)
_BRIGHTNESS = 24  # +/- grey levels of the brightness augmentation
_CONTRAST = 0.15  # contrast scaled by 1 +/- this
_SHIFT = 0.1  # spatial shift of up to this fraction of the frame side (edges repeated)
_TIME_SCALE = 0.15  # the clip's frames resampled at 1 +/- this speed around its middle (ends repeated)


@dataclass(frozen=True)
class ShardRows:
    """One shard and the clips of the subset being read that are taken from it.

    Attributes:
        path: the shard file.
        rows: how many of its subset clips are taken.
        first: the first one taken, counted among the shard's clips of the subset (a host may take part of a shard).
        subset_rows: the shard's clips of the subset per its manifest (default: ``rows``), checked on reading.
    """

    path: Path
    rows: int
    first: int = 0
    subset_rows: int | None = None

    @property
    def expected_rows(self) -> int:
        return self.rows if self.subset_rows is None else self.subset_rows


def subset_rows(index: DatasetIndex, subset: str) -> list[ShardRows]:
    """The shards of ``index`` that hold clips of ``subset`` (``train``, ``validation`` or ``all``)."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    counts = {"train": lambda s: s.train, "validation": lambda s: s.validation, "all": lambda s: s.clips}[subset]
    return [ShardRows(info.path, counts(info)) for info in index.shards if counts(info) > 0]


def host_rows(shards: Sequence[ShardRows], share: Share) -> list[ShardRows]:
    """This host's part of ``shards`` (whole shards, as ``subset_rows`` lists them): contiguous rows (``partition``)."""
    total = sum(shard.rows for shard in shards)
    return [
        ShardRows(shards[part.shard].path, part.rows, part.first, shards[part.shard].rows)
        for part in slice_rows([shard.rows for shard in shards], share.rows(total))
    ]


def _subset_mask(is_val: np.ndarray, subset: str) -> np.ndarray | None:
    if subset == "all":
        return None
    return is_val if subset == "validation" else ~is_val


def read_subset(shard: ShardRows, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the ``subset`` clips (uint8) and labels (int32) of one shard, checking the count against its manifest."""
    arrays = read_shard(shard.path, keys=("clips", "labels", "is_val"))
    mask = _subset_mask(arrays["is_val"].astype(bool), subset)
    clips, labels = arrays["clips"], arrays["labels"].astype(np.int32)
    if mask is not None:
        clips, labels = clips[mask], labels[mask]
    if len(labels) != shard.expected_rows:
        raise DataError(f"{shard.path} holds {len(labels)} {subset} clips but its manifest lists {shard.expected_rows}")
    if shard.rows != len(labels):
        taken = slice(shard.first, shard.first + shard.rows)
        clips, labels = clips[taken], labels[taken]
    return clips, labels


@dataclass(frozen=True)
class _Window:
    """Consecutive shards (in this epoch's order) whose clips are shuffled together."""

    shard_ids: tuple[int, ...]
    start: int  # position of the window's first clip in the epoch
    rows: int


@dataclass(frozen=True)
class _Decoded:
    """The clips of a window's shards, kept per shard (no concatenated copy); row ``r`` counts across shards."""

    clips: tuple[np.ndarray, ...]
    labels: np.ndarray
    offsets: np.ndarray  # first row of each shard

    @classmethod
    def from_parts(cls, parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> _Decoded:
        """Assemble the ``(clips, labels)`` of each shard of a window, in window order."""
        sizes = [len(labels) for _, labels in parts]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(tuple(clips for clips, _ in parts), np.concatenate([labels for _, labels in parts]), offsets)

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clips and labels of ``rows`` (in that order), gathered straight from the shards' arrays."""
        if len(self.clips) == 1:
            return self.clips[0][rows], self.labels[rows]
        owner = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows), *self.clips[0].shape[1:]), dtype=self.clips[0].dtype)
        for shard in np.unique(owner):
            mask = owner == shard
            out[mask] = self.clips[shard][rows[mask] - self.offsets[shard]]
        return out, self.labels[rows]


class _WindowCache:
    """Decoded windows, at most ``capacity`` at a time, keyed by their shard ids.

    Windows load on one background thread (so the next one can be prefetched while the current one is consumed),
    and the shards of a window are decoded in parallel on ``threads`` threads (zlib and numpy release the GIL).
    """

    def __init__(self, shards: Sequence[ShardRows], subset: str, capacity: int, threads: int) -> None:
        self.shards, self.subset, self.capacity, self.threads = list(shards), subset, capacity, threads
        self._ready: OrderedDict[tuple[int, ...], _Decoded] = OrderedDict()
        self._pending: dict[tuple[int, ...], Future] = {}
        self._lock = threading.Lock()
        self._pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None

    def get(self, key: tuple[int, ...], prefetch: tuple[int, ...] | None = None) -> _Decoded:
        """The decoded window ``key`` (waiting for it if needed); start loading ``prefetch`` in the background."""
        future = self._request(key)
        if prefetch is not None:
            self._request(prefetch)
        return future.result()

    def _request(self, key: tuple[int, ...]) -> Future:
        with self._lock:
            if key in self._ready:
                self._ready.move_to_end(key)
                done: Future = Future()
                done.set_result(self._ready[key])
                return done
            if key not in self._pending:
                if self._pools is None:
                    self._pools = (ThreadPoolExecutor(1, "video3dcnn-window"),
                                   ThreadPoolExecutor(self.threads, "video3dcnn-shard"))
                self._pending[key] = self._pools[0].submit(self._load, key)
            return self._pending[key]

    def _load(self, key: tuple[int, ...]) -> _Decoded:
        shards = [self.shards[shard_id] for shard_id in key]
        decoded = _Decoded.from_parts(list(self._pools[1].map(lambda shard: read_subset(shard, self.subset), shards)))
        with self._lock:
            self._ready[key] = decoded
            self._pending.pop(key, None)
            while len(self._ready) > self.capacity:
                self._ready.popitem(last=False)
        return decoded


class ClipLoader(keras.utils.PyDataset):
    """Batches ``(clips uint8 [B,T,H,W,C], labels int32 [B])`` streamed from shards.

    Args:
        shards: the shards to read and their clip counts for ``subset`` (see ``subset_rows`` and ``host_rows``).
        subset: which clips of each shard to use (``train``, ``validation`` or ``all``).
        batch_size: clips per batch; without ``steps`` the last batch of an epoch may be smaller.
        shuffle: shuffle shard order and clips within each window, differently every epoch.
        seed: seed of the shuffling and augmentation.
        buffer_clips: clips decoded and shuffled together (a window); memory is about three windows.
        augment: class-preserving jitter per clip (``augment_clips``): never a flip, which turns left into
            right.
        workers: threads preparing batches ahead of the model (0 or 1: on the training thread); also the number
            of threads decoding a window's shards.
        max_queue_size: batches prepared ahead when ``workers > 1``.
        steps: batches per epoch, for jobs with several replicas (``partition.Share.steps``). Every batch then holds
            exactly ``batch_size`` clips and comes with sample weights ``(clips, labels, weights)``: positions past
            the last clip repeat the epoch's last clips (backwards) with weight 0, so batch statistics see real
            clips and the loss and metrics ignore them.

    Attributes:
        epoch: the epoch whose order batches follow (Keras' ``on_epoch_end`` advances it).
        skip: batches of this epoch already trained (a run resumed in the middle of an epoch): the loader starts after
            them and is that much shorter, until the epoch ends.
    """

    def __init__(
        self,
        shards: Sequence[ShardRows],
        subset: str = "all",
        batch_size: int = 16,
        shuffle: bool = False,
        seed: int = 0,
        buffer_clips: int = 2048,
        augment: bool = False,
        workers: int = 1,
        max_queue_size: int = 8,
        steps: int | None = None,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if batch_size < 1 or buffer_clips < 1:
            raise ValueError("batch_size and buffer_clips must be at least 1")
        self.shards = list(shards)
        self.subset = subset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.buffer_clips = buffer_clips
        self.augment = augment
        self.epoch = 0
        self.skip = 0
        self.num_clips = sum(shard.rows for shard in self.shards)
        if steps is not None and not 0 < self.num_clips <= steps * batch_size:
            raise ValueError(f"{steps} steps of {batch_size} cannot carry {self.num_clips} clips")
        self.steps = steps
        self._plan_cache: tuple[int, list[_Window]] | None = None
        self._windows = _WindowCache(self.shards, subset, CACHED_WINDOWS, max(1, workers))
        self._orders: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
        self._orders_lock = threading.Lock()

    def __len__(self) -> int:
        return self.epoch_batches() - self.skip

    def epoch_batches(self) -> int:
        """Batches of a whole epoch (``len`` less the skipped ones)."""
        return self.steps if self.steps is not None else math.ceil(self.num_clips / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        index += self.skip
        start = min(index * self.batch_size, self.num_clips)
        stop = min(start + self.batch_size, self.num_clips)
        clips, labels = self._take(start, stop)
        if self.steps is not None:
            clips, labels, weights = self._pad(clips, labels)
        if self.augment:
            clips, labels = self._augment(clips, labels, index)
        return (clips, labels) if self.steps is None else (clips, labels, weights)

    def _take(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Clips and labels of positions ``[start, stop)`` of this epoch's order."""
        windows = self._plan()
        clips, labels = [], []
        first = max(bisect.bisect_right([w.start for w in windows], start) - 1, 0)
        for position in range(first, len(windows)):
            window = windows[position]
            if window.start >= stop and clips:
                break
            rows = self._order(window)[max(start - window.start, 0) : max(stop - window.start, 0)]
            following = windows[position + 1].shard_ids if position + 1 < len(windows) else None
            window_clips, window_labels = self._windows.get(window.shard_ids, prefetch=following).take(rows)
            clips.append(window_clips)
            labels.append(window_labels)
        return (clips[0], labels[0]) if len(clips) == 1 else (np.concatenate(clips), np.concatenate(labels))

    def _pad(self, clips: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fill the batch up to ``batch_size`` with the epoch's last clips, backwards, at sample weight 0."""
        missing = self.batch_size - len(labels)
        weights = np.concatenate([np.ones(len(labels), np.float32), np.zeros(missing, np.float32)])
        if missing == 0:
            return clips, labels, weights
        tail = min(missing, self.num_clips)
        tail_clips, tail_labels = self._take(self.num_clips - tail, self.num_clips)
        repeat = (tail - 1 - np.arange(missing)) % tail  # last clip first, then backwards, cycling
        return (np.concatenate([clips, tail_clips[repeat]]), np.concatenate([labels, tail_labels[repeat]]), weights)

    def on_epoch_end(self) -> None:
        """Advance to the next epoch's order (Keras calls this after every epoch)."""
        self.epoch += 1
        self.skip = 0

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, *key])

    def _plan(self) -> list[_Window]:
        """This epoch's windows: shards in (shuffled) order, grouped until each holds ``buffer_clips`` clips."""
        cached = self._plan_cache
        if cached is not None and cached[0] == self.epoch:
            return cached[1]
        order = self._rng(0).permutation(len(self.shards)) if self.shuffle else np.arange(len(self.shards))
        windows, current, start, rows = [], [], 0, 0
        for position, shard_id in enumerate(order):
            current.append(int(shard_id))
            rows += self.shards[shard_id].rows
            if rows >= self.buffer_clips or position == len(order) - 1:
                windows.append(_Window(tuple(sorted(current)), start, rows))
                current, start, rows = [], start + rows, 0
        self._plan_cache = (self.epoch, windows)
        return windows

    def _order(self, window: _Window) -> np.ndarray:
        """This epoch's order of the window's clips (a permutation when shuffling)."""
        if not self.shuffle:
            return np.arange(window.rows)
        key = (self.epoch, window.shard_ids)
        with self._orders_lock:
            if key not in self._orders:
                if len(self._orders) > 4 * CACHED_WINDOWS:
                    self._orders.clear()
                self._orders[key] = self._rng(1, *window.shard_ids).permutation(window.rows)
            return self._orders[key]

    def _augment(self, clips: np.ndarray, labels: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
        return augment_clips(clips, self._rng(2, index)), labels


def augment_clips(clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Jitter each clip ``[N, T, H, W, C]`` (uint8) in ways that keep a motion class.

    Per clip, all frames alike: a spatial shift of up to 10 % of the side (edge pixels repeated), brightness +/- 24
    grey levels and contrast x(1 +/- 0.15); in time, the frames are resampled at 0.85-1.15x speed around the
    middle frame, shifted by up to one frame (end frames repeated). Never a flip or a reversal: those change
    direction classes (left/right, up/down, clockwise, grow/shrink).
    """
    count, frames, height, width = clips.shape[:4]
    out = np.empty_like(clips)
    max_dy, max_dx = max(1, round(_SHIFT * height)), max(1, round(_SHIFT * width))
    middle = (frames - 1) / 2
    for i in range(count):
        speed = rng.uniform(1 - _TIME_SCALE, 1 + _TIME_SCALE)
        times = np.clip(np.round(middle + (np.arange(frames) - middle) * speed + rng.integers(-1, 2)), 0, frames - 1)
        dy, dx = int(rng.integers(-max_dy, max_dy + 1)), int(rng.integers(-max_dx, max_dx + 1))
        padded = np.pad(clips[i, times.astype(int)], ((0, 0), (max_dy, max_dy), (max_dx, max_dx), (0, 0)), "edge")
        shifted = padded[:, max_dy + dy : max_dy + dy + height, max_dx + dx : max_dx + dx + width].astype(np.float32)
        contrast = rng.uniform(1 - _CONTRAST, 1 + _CONTRAST)
        mean = shifted.mean()
        shifted = (shifted - mean) * contrast + mean + rng.integers(-_BRIGHTNESS, _BRIGHTNESS + 1)
        out[i] = np.clip(shifted, 0, 255).astype(np.uint8)
    return out


def check_compatible_with(index: DatasetIndex, classes: Sequence[str], clip_spec, other: str) -> None:
    """Refuse ``index`` unless its class list and clip spec equal ``classes`` and ``clip_spec`` (from ``other``)."""
    check_same_data((index.classes, index.clip_spec, str(index.manifests[0])), (classes, clip_spec, other))


def check_compatible(train: DatasetIndex, validation: DatasetIndex) -> None:
    """Refuse a validation channel whose class list or clip spec differs from the training channel's."""
    check_compatible_with(validation, train.classes, train.clip_spec, str(train.manifests[0]))


def _subsets(train: DatasetIndex, validation: DatasetIndex | None) -> tuple[tuple[list[ShardRows], str], ...]:
    """``((training shards, subset), (validation shards, subset))`` (see ``split_loaders``)."""
    if validation is not None:
        check_compatible(train, validation)
        return (subset_rows(train, "all"), "all"), (subset_rows(validation, "all"), "all")
    return (subset_rows(train, "train"), "train"), (subset_rows(train, "validation"), "validation")


def split_loaders(
    train: DatasetIndex,
    validation: DatasetIndex | None,
    batch_size: int,
    share: Share = Share(),
    **options,
) -> tuple[ClipLoader, ClipLoader | None]:
    """This host's training and validation loaders.

    Validation clips are the ``is_val`` clips of ``train`` (the group-aware split processing wrote), or, when a
    separate ``validation`` index is given, all of its clips (and then all clips of ``train`` are for training).

    Args:
        train, validation: processed-data indexes (``shards.load_index``).
        batch_size: clips per step over the whole job (the global batch).
        share: this host's part of the job; with more than one replica each loader reads its host's rows only,
            runs the job-wide number of steps and pads its batches (``partition``).
        **options: ``seed``, ``buffer_clips``, ``augment``, ``workers`` for the training loader.

    Returns:
        The training loader (shuffled) and the validation loader (in order), or None when there are no validation
        clips.

    Raises:
        DataError: no training clips, fewer clips than hosts, or the two indexes disagree.
    """
    (train_rows, train_subset), (val_rows, val_subset) = _subsets(train, validation)
    if not train_rows:
        raise DataError(
            f"no training clips in {train.directory}: every clip is marked for validation or the shards are empty "
            "(check the processing split options and its manifest's skipped files)"
        )
    train_loader = _host_loader(train_rows, train_subset, batch_size, share, shuffle=True, **options)
    if not val_rows:
        return train_loader, None
    val_options = {key: options[key] for key in ("workers", "buffer_clips") if key in options}
    return train_loader, _host_loader(val_rows, val_subset, batch_size, share, **val_options)


def _host_loader(shards: list[ShardRows], subset: str, batch_size: int, share: Share, **options) -> ClipLoader:
    if not share.pads:
        return ClipLoader(shards, subset, batch_size, **options)
    total = sum(shard.rows for shard in shards)
    share.check_enough(total, subset)
    mine = host_rows(shards, share)
    rows = share.rows(total)
    logger.info("host %d of %d reads %s clips %d-%d of %d (%d) from %s", share.index + 1, share.hosts, subset,
                rows.start, rows.stop - 1, total, len(rows), describe_shards(mine))
    return ClipLoader(mine, subset, share.host_batch(batch_size), steps=share.steps(total, batch_size), **options)


def describe_shards(shards: Sequence[ShardRows], limit: int = 6) -> str:
    """``N shards: a.npz[0:40], b.npz, ...`` (a partly read shard shows the rows taken)."""
    names = [shard.path.name if shard.rows == shard.expected_rows
             else f"{shard.path.name}[{shard.first}:{shard.first + shard.rows}]" for shard in shards]
    if len(names) > limit:
        names = [*names[: limit // 2], "...", *names[-(limit // 2) :]]
    return f"{len(shards)} shard{'s' if len(shards) != 1 else ''}: {', '.join(names)}"


def validation_loader(
    train: DatasetIndex, validation: DatasetIndex | None, batch_size: int, **options
) -> ClipLoader | None:
    """All validation clips in order, unpadded (the chief's final report); None when there are none."""
    val_rows, val_subset = _subsets(train, validation)[1]
    return ClipLoader(val_rows, val_subset, batch_size, **options) if val_rows else None
