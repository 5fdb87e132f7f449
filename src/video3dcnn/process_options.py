"""The options of ``video3dcnn process``: one frozen dataclass, the source of its flags and ContainerArguments.

Kept apart from ``processing`` so that building the command-line parser, and checking a job's ContainerArguments in
``video3dcnn launch`` (with only the ``aws`` extra installed), import no OpenCV.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from video3dcnn.config import (
    DEFAULT_MAX_PIXELS,
    ClipSpec,
    add_dataclass_arguments,
    build,
    coerce_mapping,
    given_arguments,
    parse_size,
)
from video3dcnn.discovery import DEFAULT_EXTENSIONS, LABEL_SOURCES


# Earlier names, still accepted: "shard" now means only an output .npz, never a part of the input.
ALIASES = {"num_shards": "num_parts", "shard_index": "part_index"}


def _opt(default: Any, help_text: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True)
class ProcessOptions:
    """Every option of ``video3dcnn process`` (flags and ContainerArguments are generated from these fields)."""

    frames: int = _opt(15, "frames per clip")
    size: str = _opt("32x32", "clip frame size HxW", metavar="HxW")
    gray: bool = _opt(False, "one gray channel instead of RGB")
    sampling: str = _opt("uniform", "uniform | head | sliding", choices=ClipSpec.SAMPLINGS)
    frame_step: int = _opt(1, "sliding: distance between the frames of a window")
    clip_stride: int | None = _opt(None, "sliding: distance between window starts (default: --frames)")
    label_from: str = _opt("auto", "auto | folder | ucf | manifest", choices=LABEL_SOURCES)
    manifest: str | None = _opt(None, "CSV of path,label[,group] rows, paths relative to the input", metavar="CSV")
    allow_outside_input: bool = _opt(False, "read --manifest rows whose path leaves the input (refused by default)")
    classes: str | None = _opt(None, "fixed class list, one name per line (or UCF101 classInd.txt)", metavar="FILE")
    val_fraction: float = _opt(0.2, "fraction of groups put in the validation split")
    workers: int | None = _opt(None, "decoding processes (default: all usable cores)")
    shard_size: int | None = _opt(None, "clips per shard (default: about 64 MiB of clips)")
    num_parts: int | None = _opt(None, "split a replicated input into this many parts, one per instance")
    part_index: int | None = _opt(None, "which part of --num-parts this instance takes (0-based)")
    max_bad_fraction: float = _opt(0.1, "fail when more than this fraction of the videos cannot be used")
    extensions: str | None = _opt(None, "comma-separated video extensions (default: the common ones)")
    preview: bool = _opt(True, "write preview.png")
    max_pixels: int = _opt(DEFAULT_MAX_PIXELS, "skip videos whose frames have more pixels (width x height)")
    compress: bool = _opt(True, "deflate the clips in the shards (false: ~12%% larger, several times faster to read)")

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ValueError(f"--max-bad-fraction must be in [0, 1], got {self.max_bad_fraction}")
        for name in ("workers", "shard_size", "num_parts", "max_pixels"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if (self.num_parts is None) != (self.part_index is None):
            raise ValueError("--num-parts and --part-index go together")
        if self.num_parts is not None and not 0 <= self.part_index < self.num_parts:
            raise ValueError(f"--part-index must be in 0..{self.num_parts - 1}, got {self.part_index}")
        self.clip_spec()

    def clip_spec(self) -> ClipSpec:
        """The clip these options describe."""
        height, width = parse_size(self.size)
        stride = self.clip_stride if self.clip_stride is not None else self.frames
        return ClipSpec(self.frames, height, width, self.gray, self.sampling, self.frame_step, stride)

    def extension_list(self) -> tuple[str, ...]:
        """The video extensions to look for."""
        if not self.extensions:
            return DEFAULT_EXTENSIONS
        return tuple(f".{ext.strip().lstrip('.').lower()}" for ext in self.extensions.split(",") if ext.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--name``/``--kebab-name`` flags for every ProcessOptions field, and the flags of ``ALIASES``."""
    add_dataclass_arguments(parser, ProcessOptions, aliases=ALIASES)


def from_arguments(namespace: argparse.Namespace) -> ProcessOptions:
    """The options given on a command line parsed with ``add_arguments``, over the defaults.

    Raises:
        ConfigError: a value that does not parse, or options that contradict each other.
    """
    return build(ProcessOptions, coerce_mapping(ProcessOptions, given_arguments(namespace, ProcessOptions), ALIASES))
