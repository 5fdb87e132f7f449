"""``video3dcnn predict``: classify video files with a trained model directory and write a CSV."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from video3dcnn.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify videos with a trained model",
        description=(
            "Decode each video with the clip spec stored beside the model (exactly like 'video3dcnn process'), "
            "average the probabilities of its clips and write one CSV row per video: "
            "path,predicted,probability[,topK,topK_probability...],clips,error. A video that cannot be decoded "
            "gets a row with the reason in 'error'."
        ),
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="video files or directories (searched recursively)")
    add_model_arguments(parser)
    parser.add_argument("--output", type=Path, default=None, help="CSV file to write (default: standard output)")
    parser.add_argument("--top-k", type=int, default=1, help="also list the K most probable classes (default: 1)")
    parser.set_defaults(run=run)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model-dir`` and ``--batch-size``, shared with ``evaluate``."""
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="the model directory of 'video3dcnn train' (model.keras, classes.txt, clip_spec.json) "
                        "or a folder holding its model.tar.gz")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per inference batch (default: 32)")


def video_paths(paths: list[Path]) -> list[Path]:
    """Files as given (missing ones too: they get an error row), directories expanded to the videos inside."""
    from video3dcnn.discovery import find_videos

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            videos = find_videos(path)
            if not videos:
                logger.warning("no video files under %s", path)
            found += videos
        else:
            found.append(path)
    if not found:
        raise DataError(f"no video files under {', '.join(map(str, paths))}")
    return found


def run(args: argparse.Namespace) -> int:
    from video3dcnn.predict import load_trained, predict_videos, write_predictions

    trained = load_trained(args.model_dir)
    if not 1 <= args.top_k <= len(trained.classes):
        raise ConfigError(f"--top-k must be between 1 and {len(trained.classes)} (the number of classes)")
    paths = video_paths(args.paths)
    predictions = write_predictions(predict_videos(trained, paths, args.batch_size), args.output, args.top_k)
    failed = sum(1 for p in predictions if p.error)
    logger.info("%d videos predicted, %d could not be decoded%s", len(predictions) - failed, failed,
                f"; CSV written to {args.output}" if args.output else "")
    return 0
