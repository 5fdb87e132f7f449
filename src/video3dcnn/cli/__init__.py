"""The ``video3dcnn`` command: one parser, one subcommand module each.

Every subcommand module exposes ``register(subparsers)``; the parser it adds sets ``run`` (``args -> int``) and
optionally ``failure_paths`` (``args -> list[Path]``: where a one-line failure reason must be written, e.g.
/opt/ml/output/failure inside a training job) and ``finish`` (``(args, exit_code) -> None``: the last step once
the outcome is known and reported, e.g. leaving a multi-host job). Heavy imports (cv2, Keras) happen inside ``run``,
so ``--help`` and ``process`` never load TensorFlow.

``main`` is the one place that catches, in two tiers: a ``ToolkitError`` is a user mistake and is reported as one line
without a traceback; anything else is a bug and is logged with its traceback. Both write the failure files and return
a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from video3dcnn import __version__
from video3dcnn.contract import write_failure
from video3dcnn.errors import ToolkitError
from video3dcnn.logs import configure_logging

logger = logging.getLogger("video3dcnn")

SUBCOMMANDS = ("process", "train", "predict", "evaluate", "serve", "sample", "launch")
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, which can keep the words no flag claims instead of exiting with a usage message.

    A parser built with ``keep_unknown=True`` (``train``) puts them in ``args.unknown_arguments``, so that its ``run``
    refuses them with a ``ConfigError``, which ``main`` reports like any user mistake (and writes to
    /opt/ml/output/failure); argparse would exit before that. Subcommand parsers are of this class too.
    """

    def __init__(self, *args: Any, keep_unknown: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_unknown = keep_unknown

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if not self.keep_unknown:
            return namespace, extras
        namespace.unknown_arguments = extras
        return namespace, []


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered."""
    parser = ArgumentParser(
        prog="video3dcnn",
        description="Labelled videos in, a trained 3D-CNN video classifier out.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING or ERROR")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"video3dcnn.cli.{name}").register(subparsers)
    return parser


def _report(args: argparse.Namespace, message: str) -> None:
    failure_paths = getattr(args, "failure_paths", None)
    for path in failure_paths(args) if failure_paths else []:
        write_failure(path, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``video3dcnn`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    code = _run(args)
    finish = getattr(args, "finish", None)
    if finish is not None:
        finish(args, code)
    return code


def _run(args: argparse.Namespace) -> int:
    """``args.run``, with every failure reported (the two tiers) and turned into an exit code."""
    try:
        return int(args.run(args) or 0)
    except ToolkitError as exc:
        message = str(exc)
        logger.error("%s", message)
        _report(args, message)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        message = str(exc) or "interrupted"  # a SIGTERM handler names its signal
        logger.error("%s", message)
        _report(args, message)
        signum = getattr(exc, "signum", None)  # signals.Stopped: the shell's convention, 128 + the signal
        return 128 + signum if signum else 130
    except Exception as exc:  # noqa: BLE001 - the second tier: a bug, reported with its traceback
        logger.exception("internal error in '%s'", args.command)
        _report(args, f"Internal error: {type(exc).__name__}: {exc}")
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
