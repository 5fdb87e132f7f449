"""``video3dcnn sample``: write the synthetic motion-direction data set (a smoke test needing no data of your own)."""

from __future__ import annotations

import argparse
from pathlib import Path

from video3dcnn.config import parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="write a small synthetic labelled video data set (classes differ only in motion direction)",
        description="Write <OUTPUT>/<Class>/v_<Class>_gGG_cCC.mp4 videos of a square moving up, down, left or right.",
    )
    parser.add_argument("output", type=Path, help="directory to write the class folders into")
    parser.add_argument("--groups", type=int, default=6, help="groups per class (default: 6)")
    parser.add_argument("--clips-per-group", type=int, default=4, help="videos per group (default: 4)")
    parser.add_argument("--frames", type=int, default=30, help="frames per video (default: 30)")
    parser.add_argument("--size", default="64x64", help="frame size HxW (default: 64x64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from video3dcnn.synthetic import write_motion_dataset

    height, width = parse_size(args.size)
    write_motion_dataset(args.output, args.groups, args.clips_per_group, args.frames, height, width, args.seed)
    return 0
