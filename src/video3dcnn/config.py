"""Typed configuration: frozen dataclasses plus coercion from string maps and generated CLI flags.

SageMaker hands hyperparameters and container arguments over as strings. ``coerce_mapping`` turns such a map into
typed values by each field's type (booleans parsed explicitly, never ``bool("False")``), rejects unknown names with the
list of valid ones, and resolves aliases. ``add_dataclass_arguments`` generates ``--snake_case`` and ``--kebab-case``
flags from the same fields, with ``argparse.SUPPRESS`` defaults so that only flags the user gave override lower layers.

No cv2, Keras or TensorFlow here: this module is imported by every command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import numbers
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from video3dcnn.errors import ConfigError, UnknownOptionError

TRUE_STRINGS = frozenset({"true", "1", "yes", "on"})
FALSE_STRINGS = frozenset({"false", "0", "no", "off"})
# The largest frame (width x height) decoding accepts unless told otherwise (``process --max-pixels``): 4096x4096,
# room for 4K in either orientation; one frame of a 16000x16000 video would take 384 MB before any clip is made.
DEFAULT_MAX_PIXELS = 4096 * 4096


def parse_bool(value: str | bool | int) -> bool:
    """Parse ``true/false/True/False/1/0/yes/no`` (and JSON-quoted forms); raise ValueError otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = _unquote(str(value)).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS:
        return False
    raise ValueError(f"not a boolean: {value!r} (use true or false)")


def _unquote(text: str) -> str:
    """Undo one level of JSON string encoding (``"\\"adam\\""`` -> ``adam``), as SageMaker SDKs may add it."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded
    return text


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def coerce_value(name: str, tp: Any, value: Any, choices: Iterable[str] | None = None) -> Any:
    """Coerce ``value`` (usually a string) to type ``tp``; raise ConfigError naming ``name`` on failure."""
    base, optional = _strip_optional(tp)
    if isinstance(value, str):
        value = _unquote(value)
        if optional and value.strip().lower() in ("", "none", "null"):
            return None
    try:
        if base is bool:
            result = parse_bool(value)
        elif base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            result = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
        elif base is float:
            result = float(value)
        elif base is str:
            result = str(value)
        elif typing.get_origin(base) is tuple:
            items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
            result = tuple(str(v).strip() for v in items)
        else:
            result = value
    except (TypeError, ValueError):
        raise ConfigError(f"invalid value {value!r} for '{name}': expected {getattr(base, '__name__', base)}") from None
    if choices is not None and result not in tuple(choices):
        raise ConfigError(f"invalid value {result!r} for '{name}': choose one of {', '.join(map(str, choices))}")
    return result


def field_names(cls: type) -> list[str]:
    """Public field names of a config dataclass."""
    return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]


def coerce_mapping(
    cls: type,
    raw: Mapping[str, Any],
    aliases: Mapping[str, str] | None = None,
    ignore_prefixes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Turn a string map into typed keyword arguments for ``cls``.

    Args:
        cls: a config dataclass; a field's ``metadata["choices"]`` restricts its values.
        raw: names (``snake_case`` or ``kebab-case``) to values, usually strings.
        aliases: extra accepted names mapped to field names (e.g. the seed notebook's ``epoch`` -> ``epochs``).
        ignore_prefixes: names starting with one of these are dropped (e.g. ``sagemaker_``).

    Returns:
        A dict of field name -> typed value, for the names present in ``raw``.

    Raises:
        UnknownOptionError: an unknown name (the message lists the valid ones).
        ConfigError: a value that does not parse.
    """
    aliases = dict(aliases or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    result: dict[str, Any] = {}
    for key, value in raw.items():
        if any(key.startswith(prefix) for prefix in ignore_prefixes):
            continue
        name = key.replace("-", "_")
        name = aliases.get(name, name)
        if name is None:  # an alias mapped to None is accepted and ignored
            continue
        if name not in fields or name.startswith("_"):
            raise UnknownOptionError(key, sorted(field_names(cls)))
        f = fields[name]
        result[name] = coerce_value(key, _field_type(cls, f), value, f.metadata.get("choices"))
    return result


def build(cls: type, *layers: Mapping[str, Any]):
    """Instantiate ``cls`` from typed layers, later layers overriding earlier ones, and run its validation."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    try:
        return cls(**merged)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    skip: Iterable[str] = (),
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Add ``--name`` / ``--kebab-name`` flags for every field of ``cls`` (defaults suppressed).

    Values stay strings here and are coerced by ``coerce_mapping`` so that flags, hyperparameters.json and container
    arguments go through one parser. Help text comes from ``field.metadata["help"]``.
    """
    skip = set(skip)
    extra = {}
    for alias, target in (aliases or {}).items():
        if target is not None:
            extra.setdefault(target, []).append(alias)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        names = [f"--{f.name}"]
        if "_" in f.name:
            names.append(f"--{f.name.replace('_', '-')}")
        for alias in extra.get(f.name, []):
            names += [f"--{alias}", f"--{alias.replace('_', '-')}"] if "_" in alias else [f"--{alias}"]
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "")
        if default is not None and default != ():
            help_text += f" (default: {default})"
        base, _ = _strip_optional(_field_type(cls, f))
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        else:
            kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())
        parser.add_argument(*names, **kwargs)


def given_arguments(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that were actually given on the command line (still as strings)."""
    return {name: getattr(namespace, name) for name in field_names(cls) if hasattr(namespace, name)}


def as_dict(obj: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


@dataclass(frozen=True)
class ClipSpec:
    """How a video becomes one model input: the contract between processing, training and predict.

    A clip is a uint8 array laid out ``frames_thwc``: ``(frames, height, width, channels)``, channels RGB (3) or gray
    (1). Keras Conv3D then sees ``(N, T, H, W, C)``.

    Attributes:
        frames: frames per clip (T).
        height, width: output size after resizing (area averaging, full frame, aspect ratio not kept).
        gray: one gray channel instead of RGB.
        sampling: ``uniform`` (frames spread over the whole video), ``head`` (the first frames) or ``sliding``
            (every window of ``frames`` frames taken every ``frame_step`` frames, advanced by ``clip_stride``).
        frame_step: distance between consecutive frames of a sliding window.
        clip_stride: distance between the starts of consecutive sliding windows.
    """

    frames: int = 15
    height: int = 32
    width: int = 32
    gray: bool = False
    sampling: str = "uniform"
    frame_step: int = 1
    clip_stride: int = 15

    SAMPLINGS: typing.ClassVar[tuple[str, ...]] = ("uniform", "head", "sliding")
    # Bounds: far beyond what 3D CNNs take (C3D 16x112x112, I3D 64x224x224), small enough that a clip spec read from a
    # file cannot make predict or processing allocate without end.
    MAX_FRAMES: typing.ClassVar[int] = 512
    MAX_SIDE: typing.ClassVar[int] = 1024
    MAX_CLIP_BYTES: typing.ClassVar[int] = 64 * 2**20
    MAX_STEP: typing.ClassVar[int] = 100_000

    def __post_init__(self) -> None:
        for name in ("frames", "height", "width", "frame_step", "clip_stride"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if not isinstance(self.gray, bool):
            raise ValueError(f"gray must be true or false, got {self.gray!r}")
        if not 1 <= self.frames <= self.MAX_FRAMES:
            raise ValueError(f"frames must be between 1 and {self.MAX_FRAMES}, got {self.frames}")
        if not (4 <= self.height <= self.MAX_SIDE and 4 <= self.width <= self.MAX_SIDE):
            raise ValueError(
                f"size must be between 4x4 and {self.MAX_SIDE}x{self.MAX_SIDE}, got {self.height}x{self.width}"
            )
        if self.sampling not in self.SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(self.SAMPLINGS)}, got {self.sampling!r}")
        if not (1 <= self.frame_step <= self.MAX_STEP and 1 <= self.clip_stride <= self.MAX_STEP):
            raise ValueError(f"frame_step and clip_stride must be between 1 and {self.MAX_STEP}")
        clip_bytes = self.frames * self.height * self.width * self.channels
        if clip_bytes > self.MAX_CLIP_BYTES:
            shape = f"{self.frames}x{self.height}x{self.width}x{self.channels}"
            raise ValueError(
                f"a clip of {shape} takes {clip_bytes / 2**20:.0f} MiB; at most {self.MAX_CLIP_BYTES // 2**20} MiB: "
                "fewer frames or a smaller size"
            )

    @property
    def channels(self) -> int:
        return 1 if self.gray else 3

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The clip shape ``(T, H, W, C)``."""
        return (self.frames, self.height, self.width, self.channels)

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored in manifest.json and clip_spec.json."""
        return {**as_dict(self), "channels": self.channels, "layout": "THWC", "color": "gray" if self.gray else "RGB"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClipSpec:
        """Inverse of ``to_dict`` (derived keys are ignored)."""
        names = set(field_names(cls))
        return cls(**{k: v for k, v in data.items() if k in names})


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (or a single number for a square) into ``(height, width)``."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        if len(parts) == 1:
            side = int(parts[0])
            return side, side
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise ConfigError(f"invalid size {text!r}: use HxW, e.g. 32x32 or 112x112")
