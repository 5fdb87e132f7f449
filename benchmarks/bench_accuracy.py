"""Accuracy against CPU time: ``video3dcnn process`` and ``video3dcnn train`` as a user runs them, per setting.

Datasets (``--dataset``, repeatable):

- ``hard``: the hard set of ``benchmarks/hard_set.py`` (written under ``--work`` once): ``train/`` is processed with
  the defaults (its validation split is the one training reports), ``test/`` (held-out source groups) is processed
  separately and scored with ``video3dcnn evaluate``;
- ``sample``: the bundled sample ``local/videos`` (its validation split is the only score).

Settings (``--setting NAME=FLAGS``, repeatable; ``default`` = no flags): each is one ``video3dcnn train`` run in
its own process, with ``FLAGS`` added to the command line (e.g. ``lr3e-4=--learning-rate 0.0003``). CPU time is
the children's user + system time (``getrusage``), so it counts every core the process used; on a busy shared
machine the wall time varies more than the CPU time.

Usage::

    KERAS_BACKEND=tensorflow python benchmarks/bench_accuracy.py --dataset hard --dataset sample \\
        --setting default= --setting e60=--epochs 60 --output results.jsonl

One JSON line per (dataset, setting) goes to ``--output`` (appended), and a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], log: Path) -> dict:
    """Run ``command`` (output to ``log``); return its wall and CPU seconds. Exits when it fails."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), TF_CPP_MIN_LOG_LEVEL="2")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    cpu, wall = _cpu_seconds(), time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    result = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(_cpu_seconds() - cpu, 1)}
    if done.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed ({done.returncode}); see {log}")
    return result


def video3dcnn(*args: str) -> list[str]:
    return [sys.executable, "-m", "video3dcnn", *args]


def prepare(dataset: str, work: Path, seed: int) -> dict:
    """Videos and processed shards of ``dataset`` under ``work`` (made once); the processing cost."""
    root = work / dataset
    info_file = root / "prepared.json"
    if info_file.exists():
        return json.loads(info_file.read_text())
    root.mkdir(parents=True, exist_ok=True)
    if dataset == "hard":
        sys.path.insert(0, str(REPO / "benchmarks"))
        from hard_set import write_hard_set

        write_hard_set(root / "videos", seed=seed)
        train_videos, test_videos = root / "videos" / "train", root / "videos" / "test"
    else:
        train_videos, test_videos = REPO / "local" / "videos", None
    info = {"shards": str(root / "shards"), "test_shards": None}
    info["process"] = timed(video3dcnn("process", "--input", str(train_videos), "--output", str(root / "shards")),
                            root / "process.log")
    if test_videos is not None:
        info["test_shards"] = str(root / "test_shards")
        timed(video3dcnn("process", "--input", str(test_videos), "--output", info["test_shards"], "--val-fraction", "0"),
              root / "process_test.log")
    info["train_videos"] = sum(1 for _ in train_videos.rglob("*.mp4"))
    info_file.write_text(json.dumps(info))
    return info


def run_setting(dataset: str, info: dict, name: str, flags: str, work: Path) -> dict:
    """Train once with ``flags`` and score; return one result row."""
    run_dir = work / dataset / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    command = video3dcnn("train", "--data-dir", info["shards"], "--model-dir", str(run_dir / "model"),
                         "--output-data-dir", str(run_dir / "output"), *shlex.split(flags))
    cost = timed(command, run_dir / "train.log")
    metrics = json.loads((run_dir / "output" / "metrics.json").read_text())
    row = {
        "dataset": dataset, "setting": name, "flags": flags, "train": cost, "process": info["process"],
        "epochs_completed": metrics["epochs_completed"],
        "val_accuracy": (metrics.get("validation") or {}).get("accuracy"),
        "train_accuracy": metrics.get("final", {}).get("accuracy"),
        "still_improving": metrics.get("still_improving"),
    }
    if info.get("test_shards"):
        timed(video3dcnn("evaluate", "--data-dir", info["test_shards"], "--model-dir", str(run_dir / "model"),
                         "--output-dir", str(run_dir / "test")), run_dir / "evaluate.log")
        row["test_accuracy"] = json.loads((run_dir / "test" / "metrics.json").read_text())["accuracy"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", action="append", choices=("hard", "sample"), required=True)
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=FLAGS")
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "bench_accuracy")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hard set (default: 0)")
    parser.add_argument("--output", type=Path, default=None, help="append one JSON line per run here")
    args = parser.parse_args(argv)
    settings = [item.partition("=")[::2] for item in args.setting] or [("default", "")]
    for dataset in args.dataset:
        info = prepare(dataset, args.work, args.seed)
        for name, flags in settings:
            row = run_setting(dataset, info, name, flags, args.work)
            line = json.dumps(row)
            print(line, flush=True)
            if args.output is not None:
                with args.output.open("a") as out:
                    out.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
