"""Which clips each host of a job reads, and how one global batch splits over hosts and devices.

Pure arithmetic (no Keras, no I/O), shared by the loader and the distribution set-up:

- A subset's clips (training or validation) are the rows of its shards concatenated in manifest order. Host ``h`` of
  ``H`` takes the contiguous rows ``[h*n//H, (h+1)*n//H)``: the hosts' parts are disjoint, cover every clip, differ
  by at most one clip, and a host reads only the shards its rows overlap (a shard may be split between two hosts).
- ``batch_size`` is the global batch: every step, each of the job's ``hosts x devices`` replicas gets
  ``ceil(batch_size / replicas)`` clips, so a batch that does not divide evenly is rounded up to the next multiple.
- Every host runs the same number of steps per epoch (a host that stopped early would leave the others waiting in a
  collective). With more than one replica every batch is full: the positions past a host's last clip repeat its own
  clips with sample weight 0, so each clip counts exactly once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from video3dcnn.errors import DataError


@dataclass(frozen=True)
class RowSlice:
    """Rows ``[first, first + rows)`` of shard number ``shard`` (counted among that shard's rows of the subset)."""

    shard: int
    first: int
    rows: int


@dataclass(frozen=True)
class Share:
    """This process's part of a job: host ``index`` of ``hosts``, each host with ``devices`` devices.

    Attributes:
        index: position of this host among the hosts in sorted order (0 is the chief).
        hosts: number of hosts (processes) in the job.
        devices: devices each host trains on (GPUs, or logical CPU devices).
    """

    index: int = 0
    hosts: int = 1
    devices: int = 1

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.devices < 1 or not 0 <= self.index < self.hosts:
            raise ValueError(f"invalid share: host {self.index} of {self.hosts}, {self.devices} devices")

    @property
    def replicas(self) -> int:
        """Model replicas in the job (one per device of every host)."""
        return self.hosts * self.devices

    @property
    def pads(self) -> bool:
        """Whether batches are padded to a fixed size (and carry sample weights): with more than one replica."""
        return self.replicas > 1

    def host_batch(self, batch_size: int) -> int:
        """Clips this host feeds per step: ``ceil(batch_size / replicas)`` per device."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        return math.ceil(batch_size / self.replicas) * self.devices

    def global_batch(self, batch_size: int) -> int:
        """Clips per step over the whole job (``batch_size`` rounded up to a multiple of the replicas)."""
        return self.host_batch(batch_size) * self.hosts

    def rows(self, total: int) -> range:
        """This host's rows among ``total`` rows."""
        return range(self.index * total // self.hosts, (self.index + 1) * total // self.hosts)

    def steps(self, total: int, batch_size: int) -> int:
        """Steps per epoch over ``total`` rows, the same on every host (set by the largest host's part)."""
        return math.ceil(math.ceil(total / self.hosts) / self.host_batch(batch_size))

    def check_enough(self, total: int, what: str) -> None:
        """Refuse a subset with fewer clips than hosts: a host without clips has nothing to feed its steps with."""
        if 0 < total < self.hosts:
            raise DataError(
                f"{total} {what} clips cannot be split over {self.hosts} hosts: every host needs at least one; "
                "use fewer instances or more data"
            )


def slice_rows(counts: Sequence[int], rows: range) -> list[RowSlice]:
    """The parts of the shards (with ``counts`` rows each, concatenated in order) that ``rows`` covers.

    Shards ``rows`` does not touch are left out, so a host reads only the shards that hold its clips.
    """
    slices, start = [], 0
    for shard, count in enumerate(counts):
        first, last = max(rows.start, start), min(rows.stop, start + count)
        if first < last:
            slices.append(RowSlice(shard, first - start, last - first))
        start += count
    return slices
