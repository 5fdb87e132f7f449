"""The streaming shard loader: coverage, shuffling across shards, bounded memory, split rules and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from trainkit import TINY_SPEC, write_dataset

from video3dcnn import data
from video3dcnn.data import ClipLoader, augment_clips, host_rows, split_loaders, subset_rows, validation_loader
from video3dcnn.errors import DataError
from video3dcnn.partition import Share
from video3dcnn.shards import Shard, read_shard, write_shard


def _fingerprints(clips: np.ndarray) -> list[bytes]:
    return [clip.tobytes() for clip in clips]


def _all_clips(index, subset: str) -> tuple[list[bytes], list[int]]:
    """Every clip of ``subset`` straight from the shards (the reference the loader must reproduce)."""
    clips, labels = [], []
    for info in index.shards:
        shard = read_shard(info.path)
        keep = {"train": ~shard.is_val, "validation": shard.is_val, "all": np.ones(len(shard), bool)}[subset]
        clips += _fingerprints(shard.clips[keep])
        labels += shard.labels[keep].tolist()
    return clips, labels


def _held_clips(loader: ClipLoader) -> int:
    """Clips the loader holds decoded right now: those of the windows in its cache."""
    cache = loader._windows
    with cache._lock:
        return sum(len(window.labels) for window in cache._ready.values())


def _epoch(loader: ClipLoader) -> tuple[np.ndarray, np.ndarray]:
    batches = [loader[i] for i in range(len(loader))]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


@pytest.fixture
def index(tmp_path):
    return write_dataset(tmp_path / "data", classes=("a", "b", "c"), clips_per_class=10, shard_size=5)


def test_one_epoch_yields_every_training_clip_once_as_uint8(index):
    loader = ClipLoader(subset_rows(index, "train"), "train", batch_size=4, shuffle=True, buffer_clips=7)
    clips, labels = _epoch(loader)
    expected_clips, expected_labels = _all_clips(index, "train")
    assert clips.dtype == np.uint8 and labels.dtype == np.int32
    assert clips.shape[1:] == TINY_SPEC.shape
    assert sorted(zip(_fingerprints(clips), labels.tolist())) == sorted(zip(expected_clips, expected_labels))
    assert len(loader) == -(-len(expected_labels) // 4)


def test_unshuffled_validation_keeps_shard_order(index):
    loader = ClipLoader(subset_rows(index, "validation"), "validation", batch_size=3)
    clips, labels = _epoch(loader)
    expected_clips, expected_labels = _all_clips(index, "validation")
    assert _fingerprints(clips) == expected_clips and labels.tolist() == expected_labels


def test_order_changes_every_epoch_and_is_reproducible(index):
    def orders(seed):
        loader = ClipLoader(subset_rows(index, "all"), "all", batch_size=5, shuffle=True, seed=seed)
        first = _fingerprints(_epoch(loader)[0])
        loader.on_epoch_end()
        return first, _fingerprints(_epoch(loader)[0])

    epoch0, epoch1 = orders(seed=3)
    assert epoch0 != epoch1 and sorted(epoch0) == sorted(epoch1)
    assert orders(seed=3) == (epoch0, epoch1)
    assert orders(seed=4)[0] != epoch0


def test_batches_mix_clips_from_different_shards(index):
    loader = ClipLoader(subset_rows(index, "all"), "all", batch_size=10, shuffle=True, buffer_clips=30)
    shard_of = {}
    for number, info in enumerate(index.shards):
        shard_of.update({key: number for key in _fingerprints(read_shard(info.path).clips)})
    first_batch = _fingerprints(loader[0][0])
    assert len({shard_of[key] for key in first_batch}) > 1


def test_memory_is_bounded_by_the_buffer_not_the_data_set(index):
    """At most three windows are decoded at a time, each of about buffer_clips clips (plus one shard)."""
    loader = ClipLoader(subset_rows(index, "all"), "all", batch_size=4, shuffle=True, buffer_clips=4)
    peak = 0
    for epoch in range(2):
        for i in range(len(loader)):
            loader[i]
            peak = max(peak, _held_clips(loader))
        loader.on_epoch_end()
    assert peak <= 3 * (4 + 5 - 1)
    assert peak <= loader.num_clips // 2


def test_random_access_gives_the_same_batch_as_sequential(index):
    """Loader threads fetch batches out of order; a batch must not depend on what was fetched before."""
    loader = ClipLoader(subset_rows(index, "all"), "all", batch_size=4, shuffle=True, buffer_clips=6)
    sequential = [_fingerprints(loader[i][0]) for i in range(len(loader))]
    fresh = ClipLoader(subset_rows(index, "all"), "all", batch_size=4, shuffle=True, buffer_clips=6)
    assert [_fingerprints(fresh[i][0]) for i in reversed(range(len(fresh)))] == sequential[::-1]
    with pytest.raises(IndexError):
        loader[len(loader)]


def test_augment_keeps_labels_and_changes_pixels_deterministically(index):
    plain = ClipLoader(subset_rows(index, "all"), "all", batch_size=8, seed=1)
    augmented = ClipLoader(subset_rows(index, "all"), "all", batch_size=8, seed=1, augment=True)
    (clips, labels), (aug_clips, aug_labels) = plain[0], augmented[0]
    assert aug_labels.tolist() == labels.tolist() and aug_clips.dtype == np.uint8
    assert not np.array_equal(aug_clips, clips)
    np.testing.assert_array_equal(augmented[0][0], aug_clips)


def test_augmentation_keeps_the_direction_of_motion():
    clips = np.zeros((64, 8, 16, 16, 1), np.uint8)
    for t in range(8):  # a bright column moving right, one pixel a frame, then another moving down
        clips[:32, t, :, 4 + t] = 200
        clips[32:, t, 4 + t, :] = 200
    augmented = augment_clips(clips, np.random.default_rng(0)).astype(np.float32)
    weights = augmented - augmented.min(axis=(2, 3, 4), keepdims=True)
    grid = np.arange(16, dtype=np.float32)
    x = (weights.sum(axis=(2, 4)) * grid).sum(axis=2) / weights.sum(axis=(2, 3, 4))  # centroid per clip and frame
    y = (weights.sum(axis=(3, 4)) * grid).sum(axis=2) / weights.sum(axis=(2, 3, 4))
    assert (x[:32, -1] > x[:32, 0] + 3).all() and (y[32:, -1] > y[32:, 0] + 3).all()
    assert not np.array_equal(augmented.astype(np.uint8), clips)


def test_split_uses_the_is_val_flags(index):
    train, validation = split_loaders(index, None, batch_size=4)
    assert (train.num_clips, validation.num_clips) == (index.num_train, index.num_validation)
    assert train.shuffle and not validation.shuffle


def test_validation_channel_uses_all_clips_of_both(tmp_path, index):
    other = write_dataset(tmp_path / "val", classes=("a", "b", "c"), clips_per_class=2, host="algo-2")
    train, validation = split_loaders(index, other, batch_size=4)
    assert train.num_clips == len(_all_clips(index, "all")[1])
    assert validation.num_clips == 6


def test_no_validation_clips_gives_no_validation_loader(tmp_path):
    index = write_dataset(tmp_path / "d", clips_per_class=3, val_every=0)
    assert split_loaders(index, None, batch_size=2)[1] is None


def test_all_clips_for_validation_is_refused(tmp_path):
    index = write_dataset(tmp_path / "d", clips_per_class=2, val_every=1)
    with pytest.raises(DataError, match="no training clips"):
        split_loaders(index, None, batch_size=2)


def test_validation_channel_with_other_classes_names_both_manifests(tmp_path, index):
    other = write_dataset(tmp_path / "val", classes=("a", "b", "x"), clips_per_class=2, host="algo-2")
    with pytest.raises(DataError) as caught:
        split_loaders(index, other, batch_size=4)
    assert "manifest-algo-1.json" in str(caught.value) and "manifest-algo-2.json" in str(caught.value)


def test_two_hosts_with_different_class_lists_are_refused(tmp_path):
    write_dataset(tmp_path / "d", classes=("a", "b"), host="algo-1")
    with pytest.raises(DataError, match="manifest-algo-1.json and manifest-algo-2.json"):
        write_dataset(tmp_path / "d", classes=("a", "c"), host="algo-2")  # ends with load_index


def test_shard_that_disagrees_with_its_manifest_is_refused(index):
    info = next(info for info in index.shards if info.validation)
    shard = read_shard(info.path)
    write_shard(info.path, Shard(shard.clips, shard.labels, shard.groups, np.zeros(len(shard), bool),
                                 shard.paths, shard.frame_indices))
    loader = ClipLoader(subset_rows(index, "validation"), "validation", batch_size=50)
    with pytest.raises(DataError, match="manifest lists"):
        loader[0]


def test_manifest_counts_drive_the_epoch_length(index):
    manifest = json.loads(index.manifests[0].read_text())
    assert sum(entry["train"] for entry in manifest["shards"]) == ClipLoader(
        subset_rows(index, "train"), "train", batch_size=1
    ).num_clips


def _host_epoch(loader: ClipLoader) -> list[tuple[bytes, int, float]]:
    """(clip, label, weight) of every position of one epoch of a padded loader."""
    rows = []
    for i in range(len(loader)):
        clips, labels, weights = loader[i]
        assert len(labels) == loader.batch_size and weights.dtype == np.float32
        rows += zip(_fingerprints(clips), labels.tolist(), weights.tolist())
    return rows


@pytest.mark.parametrize("hosts", [2, 3])
@pytest.mark.parametrize("subset", ["train", "validation"])
def test_hosts_together_see_every_clip_once_in_equal_steps(index, hosts, subset):
    """Each host's loader: its own clips at weight 1, padding (its own clips again) at weight 0, same step count."""
    expected = sorted(zip(*_all_clips(index, subset)))
    seen, steps = [], set()
    for host in range(hosts):
        loaders = split_loaders(index, None, batch_size=4, share=Share(host, hosts), buffer_clips=7)
        loader = loaders[0] if subset == "train" else loaders[1]
        positions = _host_epoch(loader)
        real = [(clip, label) for clip, label, weight in positions if weight == 1]
        padding = [(clip, label) for clip, label, weight in positions if weight == 0]
        assert set(padding) <= set(real)  # padded positions repeat this host's clips
        seen += real
        steps.add(len(loader))
    assert sorted(seen) == expected
    assert len(steps) == 1


def test_a_host_reads_only_the_shards_holding_its_clips(index, monkeypatch):
    read = []
    original = data.read_shard
    monkeypatch.setattr(data, "read_shard", lambda path, **kw: read.append(path.name) or original(path, **kw))
    mine = host_rows(subset_rows(index, "all"), Share(0, 3))
    loader = ClipLoader(mine, "all", batch_size=4, steps=3)
    assert sum(loader[i][2].sum() for i in range(len(loader))) == 10  # a third of the 30 clips
    assert sorted(set(read)) == sorted(shard.path.name for shard in mine)
    assert len(mine) < len(index.shards)


def test_two_devices_round_an_odd_batch_up_and_pad_the_last_one(index):
    share = Share(0, 1, devices=2)
    train, _ = split_loaders(index, None, batch_size=5, share=share)
    assert train.batch_size == 6 and len(train) == -(-index.num_train // 6)
    clips, labels, weights = train[len(train) - 1]
    assert len(labels) == 6 and weights.sum() == index.num_train - 6 * (len(train) - 1)


def test_the_final_report_reads_every_validation_clip_unpadded(index):
    loader = validation_loader(index, None, batch_size=4)
    clips, labels = _epoch(loader)
    assert labels.tolist() == _all_clips(index, "validation")[1]
