"""Typed configuration: coercion of SageMaker's strings, generated flags, layered building and ClipSpec."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from video3dcnn.config import (
    ClipSpec,
    add_dataclass_arguments,
    as_dict,
    build,
    coerce_mapping,
    coerce_value,
    field_names,
    given_arguments,
    parse_bool,
    parse_size,
)
from video3dcnn.errors import ConfigError, UnknownOptionError


@dataclass(frozen=True)
class Options:
    """A config dataclass with one field of every kind the coercion knows."""

    count: int = field(default=3, metadata={"help": "how many"})
    rate: float = 0.5
    name: str = field(default="a", metadata={"choices": ("a", "b")})
    loud: bool = False
    limit: int | None = None
    tags: tuple[str, ...] = ()
    max_size: int | None = field(default=None, metadata={"metavar": "N"})
    _hidden: int = 0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("count must not be negative")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("False", False), ("YES", True), ("off", False), ("1", True), ('"false"', False), (True, True),
     (0, False)],
)
def test_parse_bool_takes_every_spelling_sagemaker_uses(value, expected):
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, "tru"])
def test_parse_bool_refuses_anything_else(value):
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool(value)


@pytest.mark.parametrize(
    ("tp", "value", "expected"),
    [
        (int, "3", 3),
        (int, 4.0, 4),
        (int, '"5"', 5),  # JSON-encoded, as SageMaker SDKs may send it
        (float, "1e-3", 0.001),
        (str, '"adam"', "adam"),
        (str, "adam", "adam"),
        (int | None, "null", None),
        (int | None, "None", None),  # the toolkit's str(None)
        (int | None, "", None),
        (int | None, "7", 7),
        (tuple[str, ...], "a, b,,c", ("a", "b", "c")),
        (tuple[str, ...], ["x", "y"], ("x", "y")),
    ],
)
def test_coerce_value_by_type(tp, value, expected):
    assert coerce_value("opt", tp, value) == expected


@pytest.mark.parametrize(("tp", "value"), [(int, "three"), (int, 2.5), (float, "fast"), (bool, "maybe")])
def test_coerce_value_names_the_option_and_the_type(tp, value):
    with pytest.raises(ConfigError, match=f"invalid value .* for 'opt': expected {tp.__name__}"):
        coerce_value("opt", tp, value)


def test_coerce_value_checks_choices():
    assert coerce_value("name", str, "b", ("a", "b")) == "b"
    with pytest.raises(ConfigError, match="invalid value 'c' for 'name': choose one of a, b"):
        coerce_value("name", str, "c", ("a", "b"))


def test_coerce_mapping_resolves_spellings_aliases_and_ignored_names():
    raw = {"count": "4", "max-size": "9", "n": "b", "dropped": "x", "sagemaker_program": "train.py"}
    typed = coerce_mapping(Options, raw, aliases={"n": "name", "dropped": None}, ignore_prefixes=("sagemaker_",))
    assert typed == {"count": 4, "max_size": 9, "name": "b"}


@pytest.mark.parametrize("key", ["colour", "_hidden"])
def test_coerce_mapping_refuses_unknown_names_with_the_facts(key):
    with pytest.raises(UnknownOptionError) as caught:
        coerce_mapping(Options, {key: "1"})
    assert caught.value.name == key
    assert caught.value.valid == sorted(field_names(Options))
    assert "_hidden" not in caught.value.valid
    assert str(caught.value) == f"unknown option '{key}'; valid options are: {', '.join(caught.value.valid)}"


def test_build_lets_later_layers_win_and_turns_validation_errors_into_config_errors():
    assert build(Options, {"count": 1, "rate": 0.1}, {"count": 2}) == Options(count=2, rate=0.1)
    with pytest.raises(ConfigError, match="count must not be negative"):
        build(Options, {"count": -1})


def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_dataclass_arguments(parser, Options, **kwargs)
    return parser


def test_generated_flags_take_both_spellings_and_leave_out_what_was_not_given():
    args = _parser().parse_args(["--max-size", "8", "--loud", "--rate=0.2"])
    assert given_arguments(args, Options) == {"max_size": "8", "loud": "true", "rate": "0.2"}  # still strings
    assert given_arguments(_parser().parse_args(["--max_size", "8"]), Options) == {"max_size": "8"}
    assert given_arguments(_parser().parse_args([]), Options) == {}


def test_alias_flags_take_both_spellings_and_skipped_fields_get_no_flag():
    parser = _parser(aliases={"size_limit": "max_size", "n": "name", "gone": None}, skip=("rate",))
    for flag in ("--size_limit", "--size-limit"):
        assert given_arguments(parser.parse_args([flag, "5"]), Options) == {"max_size": "5"}
    assert given_arguments(parser.parse_args(["--n", "b"]), Options) == {"name": "b"}
    assert parser.parse_known_args(["--rate", "1", "--_hidden", "1"])[1] == ["--rate", "1", "--_hidden", "1"]


def test_help_shows_the_defaults_and_metavars():
    text = _parser().format_help()
    assert "how many (default: 3)" in text and "--max-size N" in text and "--loud [BOOL]" in text


def test_as_dict_is_json_friendly():
    assert as_dict(Options(tags=("x",))) == {
        "count": 3, "rate": 0.5, "name": "a", "loud": False, "limit": None, "tags": ["x"], "max_size": None,
        "_hidden": 0,
    }


def test_clip_spec_shape_and_dict_round_trip():
    spec = ClipSpec(frames=8, height=24, width=40, gray=True, sampling="sliding", frame_step=2, clip_stride=4)
    assert spec.shape == (8, 24, 40, 1) and spec.channels == 1
    stored = spec.to_dict()
    assert stored["layout"] == "THWC" and stored["color"] == "gray" and stored["channels"] == 1
    assert ClipSpec.from_dict(stored) == spec
    assert ClipSpec().shape == (15, 32, 32, 3) and ClipSpec().to_dict()["color"] == "RGB"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"frames": 0}, "frames"), ({"height": 3}, "between 4x4 and 1024x1024"), ({"sampling": "random"}, "sampling"),
     ({"frame_step": 0}, "frame_step"),
     # absurd values from a hostile or damaged clip_spec.json: a 30 GB allocation per clip, or wrong types
     ({"height": 100000, "width": 100000}, "between 4x4 and 1024x1024"), ({"frames": 513}, "between 1 and 512"),
     ({"frames": 128, "height": 512, "width": 512}, "96 MiB; at most 64 MiB"), ({"frames": "16"}, "whole number"),
     ({"frames": 15.5}, "whole number"), ({"width": True}, "whole number"), ({"gray": "no"}, "true or false"),
     ({"clip_stride": 10**9}, "between 1 and 100000")],
)
def test_clip_spec_refuses_impossible_clips(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClipSpec(**kwargs)


@pytest.mark.parametrize(("text", "expected"), [("32x32", (32, 32)), ("112X96", (112, 96)), ("64", (64, 64)),
                                                 ("24×40", (24, 40))])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["big", "1x2x3", "x32", ""])
def test_parse_size_refuses_other_text(text):
    with pytest.raises(ConfigError, match="use HxW"):
        parse_size(text)
