"""``video3dcnn evaluate``: accuracy, per-class precision/recall and the confusion matrix of a trained model."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from video3dcnn.cli.predict import add_model_arguments
from video3dcnn.errors import DataError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a trained model on processed shards or labelled videos",
        description=(
            "Score a trained model on processed shards (--data-dir) or on a folder of labelled videos (--videos, "
            "any layout 'video3dcnn process' accepts). Prints the report and writes metrics.json and "
            "confusion_matrix.png (and predictions.csv for videos) to --output-dir."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-dir", type=Path, help="output of 'video3dcnn process' (shards and manifests)")
    source.add_argument("--videos", type=Path, help="folder of labelled videos")
    add_model_arguments(parser)
    parser.add_argument("--split", choices=("all", "validation", "train"), default="all",
                        help="with --data-dir: which clips to score (default: all)")
    parser.add_argument("--output-dir", type=Path, default=Path("evaluation"),
                        help="where metrics.json and confusion_matrix.png go (default: ./evaluation)")
    parser.set_defaults(run=run)


def _score_shards(trained, data_dir: Path, split: str, batch_size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    from video3dcnn.data import ClipLoader, check_compatible_with, subset_rows
    from video3dcnn.evaluation import predict_loader
    from video3dcnn.shards import load_index

    index = load_index(data_dir)
    check_compatible_with(index, trained.classes, trained.clip_spec, f"the model in {trained.directory}")
    rows = subset_rows(index, split)
    if not rows:
        raise DataError(f"no {split} clips in {data_dir}")
    labels, probabilities = predict_loader(trained.model, ClipLoader(rows, split, batch_size))
    return labels, probabilities, {"data_dir": str(data_dir), "split": split}


def _score_videos(trained, root: Path, batch_size: int, output_dir: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    from video3dcnn.discovery import discover
    from video3dcnn.predict import predict_videos, write_predictions

    found = discover(root, classes=trained.classes)
    for skipped in found.skipped:
        logger.warning("skipped %s: %s", skipped.relpath, skipped.reason)
    predictions = write_predictions(
        predict_videos(trained, [video.path for video in found.videos], batch_size),
        output_dir / "predictions.csv", top_k=min(3, len(trained.classes)),
    )
    scored = [(video, p) for video, p in zip(found.videos, predictions) if not p.error]
    if not scored:
        raise DataError(f"none of the {len(predictions)} videos under {root} could be decoded")
    labels = np.array([trained.classes.index(video.label) for video, _ in scored], np.int64)
    by_class = [dict(p.ranked) for _, p in scored]
    probabilities = np.array([[ranked[name] for name in trained.classes] for ranked in by_class])
    failed = [{"path": str(p.path), "error": p.error} for p in predictions if p.error]
    return labels, probabilities, {"videos": str(root), "failed": failed, "skipped": len(found.skipped)}


def run(args: argparse.Namespace) -> int:
    from video3dcnn.evaluation import evaluate_predictions, format_report
    from video3dcnn.files import write_json_atomic
    from video3dcnn.plots import CONFUSION_MATRIX, plot_confusion_matrix
    from video3dcnn.predict import load_trained

    trained = load_trained(args.model_dir)
    if args.data_dir is not None:
        labels, probabilities, source = _score_shards(trained, args.data_dir, args.split, args.batch_size)
    else:
        labels, probabilities, source = _score_videos(trained, args.videos, args.batch_size, args.output_dir)
    report = evaluate_predictions(labels, probabilities, trained.classes)
    print(format_report(report))
    write_json_atomic(args.output_dir / "metrics.json", {**report, "model_dir": str(args.model_dir), **source})
    plot_confusion_matrix(report["confusion_matrix"], trained.classes, args.output_dir / CONFUSION_MATRIX)
    logger.info("metrics.json and %s written to %s", CONFUSION_MATRIX, args.output_dir)
    return 0
