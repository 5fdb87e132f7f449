"""The per-host split and the batch arithmetic: properties over 1-5 hosts, 1-12 shards and uneven shard sizes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from video3dcnn.errors import DataError
from video3dcnn.partition import RowSlice, Share, slice_rows


def _shard_sizes(shards: int, seed: int) -> list[int]:
    """Uneven shard sizes (1-9 clips), some shards small enough that a host gets none of them."""
    return np.random.default_rng([shards, seed]).integers(1, 10, shards).tolist()


@pytest.mark.parametrize("hosts", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("shards", range(1, 13))
def test_hosts_split_the_clips_disjointly_completely_and_evenly(hosts, shards):
    for seed, batch_size in itertools.product(range(3), (1, 4, 7, 16)):
        counts = _shard_sizes(shards, seed)
        total = sum(counts)
        if total < hosts:
            continue
        taken, steps = [], set()
        for index in range(hosts):
            share = Share(index, hosts)
            mine = share.rows(total)
            slices = slice_rows(counts, mine)
            # the slices are exactly the host's contiguous rows, in order, within their shards
            rows = [sum(counts[:s.shard]) + s.first + r for s in slices for r in range(s.rows)]
            assert rows == list(mine)
            assert all(0 <= s.first and s.first + s.rows <= counts[s.shard] and s.rows > 0 for s in slices)
            taken += rows
            steps.add(share.steps(total, batch_size))
            assert len(mine) <= share.steps(total, batch_size) * share.host_batch(batch_size)  # every clip fits
        assert sorted(taken) == list(range(total))  # disjoint and complete
        sizes = [len(Share(i, hosts).rows(total)) for i in range(hosts)]
        assert max(sizes) - min(sizes) <= 1
        assert len(steps) == 1  # every host runs the same number of steps


def test_a_host_reads_only_the_shards_its_rows_overlap():
    counts = [5, 5, 5, 5]
    assert slice_rows(counts, Share(0, 2).rows(20)) == [RowSlice(0, 0, 5), RowSlice(1, 0, 5)]
    assert slice_rows(counts, Share(1, 3).rows(20)) == [RowSlice(1, 1, 4), RowSlice(2, 0, 3)]  # rows 6-12


def test_more_hosts_than_shards_split_inside_the_one_shard():
    assert [slice_rows([9], Share(i, 4).rows(9)) for i in range(4)] == [
        [RowSlice(0, 0, 2)], [RowSlice(0, 2, 2)], [RowSlice(0, 4, 2)], [RowSlice(0, 6, 3)],
    ]


@pytest.mark.parametrize(
    ("batch_size", "hosts", "devices", "host_batch", "global_batch"),
    [(16, 1, 1, 16, 16), (16, 2, 1, 8, 16), (16, 3, 1, 6, 18), (16, 2, 2, 8, 16), (5, 1, 2, 6, 6), (1, 4, 1, 1, 4)],
)
def test_the_global_batch_splits_evenly_and_rounds_up(batch_size, hosts, devices, host_batch, global_batch):
    share = Share(0, hosts, devices)
    assert share.host_batch(batch_size) == host_batch
    assert share.global_batch(batch_size) == global_batch
    assert share.host_batch(batch_size) % devices == 0


def test_padding_only_with_more_than_one_replica():
    assert not Share().pads
    assert Share(0, 2).pads and Share(0, 1, 2).pads


def test_fewer_clips_than_hosts_is_refused():
    Share(0, 3).check_enough(3, "train")
    Share(0, 3).check_enough(0, "validation")  # no validation at all is allowed
    with pytest.raises(DataError, match="2 validation clips cannot be split over 3 hosts"):
        Share(0, 3).check_enough(2, "validation")
