"""The options of ``video3dcnn process``: validation, the clip they describe, and the flags built from them."""

from __future__ import annotations

import argparse

import pytest

from video3dcnn.config import ClipSpec
from video3dcnn.errors import ConfigError
from video3dcnn.discovery import DEFAULT_EXTENSIONS
from video3dcnn.process_options import ProcessOptions, add_arguments, from_arguments


def _parse(argv: list[str]) -> ProcessOptions:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    return from_arguments(parser.parse_args(argv))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_parts": 2}, "--num-parts and --part-index go together"),
        ({"num_parts": 2, "part_index": 2}, r"--part-index must be in 0\.\.1"),
        ({"val_fraction": 1.0}, "val-fraction"),
        ({"workers": 0}, "workers"),
        ({"frames": 0}, "frames"),
    ],
)
def test_invalid_options(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProcessOptions(**overrides)


@pytest.mark.parametrize(
    "argv",
    [
        ["--num-parts", "3", "--part-index", "2"],
        ["--num_parts", "3", "--part_index", "2"],
        ["--num-shards", "3", "--shard-index", "2"],  # the earlier names stay accepted
        ["--num_shards", "3", "--shard_index", "2"],
    ],
)
def test_the_input_split_takes_its_new_and_its_earlier_names(argv: list[str]) -> None:
    assert _parse(argv) == ProcessOptions(num_parts=3, part_index=2)


def test_only_given_flags_override_the_defaults_and_values_are_coerced() -> None:
    assert _parse([]) == ProcessOptions()
    options = _parse(["--frames", "8", "--size", "24x40", "--gray", "--sampling", "sliding", "--frame-step", "2",
                      "--preview", "false", "--extensions", "AVI, .mp4"])
    assert options.clip_spec() == ClipSpec(8, 24, 40, True, "sliding", 2, 8)  # the stride defaults to --frames
    assert options.preview is False and options.compress is True
    assert options.extension_list() == (".avi", ".mp4")
    assert ProcessOptions().extension_list() == DEFAULT_EXTENSIONS


def test_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="invalid value 'many' for 'frames'"):
        _parse(["--frames", "many"])
    with pytest.raises(ConfigError, match="--part-index must be in 0..1, got 5"):
        _parse(["--num-shards", "2", "--part-index", "5"])
