"""Peak memory of decoding one long or large video (not a timed test): the bound docs/processing.md states.

Makes two H.264 videos with the ffmpeg of ``imageio-ffmpeg`` (``testsrc2`` content, libx264 ultrafast, a keyframe
every 250 frames, B-frames), unless they are already in ``--workdir``:

- ``long``: 1 hour of 320x240 at 25 fps (90,000 frames);
- ``4k``: 60 s of 3840x2160 at 25 fps (1,500 frames).

Then decodes each in a fresh Python process with ``decode_clips`` (15 frames, 32x32 RGB, uniform, and the same with
``sliding`` windows of 15 frames every 150 for the long video) and prints the process's peak resident memory, with
that of a process that only imports the decoder beside it. Decoding runs the keyframe runs; the packet index, the
packets kept from it (up to 32 MiB), the decoder's reference frames and the wanted frames are all that grows.

Usage: ``python benchmarks/bench_memory.py [--workdir DIR] [--seconds 3600]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIDEOS = {  # name -> (size, seconds: None = --seconds)
    "long": ("320x240", None),
    "4k": ("3840x2160", 60),
}
PROBE = """
import json, resource, sys, time
from video3dcnn.config import ClipSpec
from video3dcnn.decoding import decode_clips
spec = ClipSpec(**json.loads(sys.argv[2]))
start = time.perf_counter()
decoded = decode_clips(sys.argv[1], spec) if sys.argv[1] != "-" else None
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "method": decoded.method if decoded else "",
    "frames": decoded.num_frames if decoded else 0,
    "clips": len(decoded.clips) if decoded else 0,
}))
"""
SPECS = {
    "uniform": {"frames": 15, "height": 32, "width": 32},
    "sliding": {"frames": 15, "height": 32, "width": 32, "sampling": "sliding", "clip_stride": 150},
}


def make_video(path: Path, size: str, seconds: int) -> None:
    """Encode ``seconds`` of ffmpeg's ``testsrc2`` pattern at ``size`` and 25 fps into ``path``."""
    sys.path.insert(0, str(REPO / "tests"))
    from videos import ffmpeg

    source = f"testsrc2=size={size}:rate=25:duration={seconds}"
    ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "250",
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip


def measure(path: str, spec: dict) -> dict:
    """Decode ``path`` (``-``: nothing) in a fresh process; its timing, peak memory and result."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, path, json.dumps(spec)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="where the videos are made and kept")
    parser.add_argument("--seconds", type=int, default=3600, help="length of the 320x240 video")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        baseline = measure("-", SPECS["uniform"])["peak_mib"]
        print(f"a process that imports the decoder: {baseline:.0f} MiB peak\n")
        print("| video | size | frames | sampling | method | clips | seconds | peak MiB |")
        print("|---|---|---|---|---|---|---|---|")
        for name, (size, seconds) in VIDEOS.items():
            seconds = seconds or args.seconds
            path = workdir / f"{name}-{size}-{seconds}s.mp4"
            if not path.exists():
                start = time.perf_counter()
                make_video(path, size, seconds)
                print(f"(made {path.name} in {time.perf_counter() - start:.0f} s)", file=sys.stderr)
            for sampling in ("uniform", "sliding") if name == "long" else ("uniform",):
                row = measure(str(path), SPECS[sampling])
                print(
                    f"| {name}: {seconds} s | {size}, {path.stat().st_size / 2**20:.0f} MiB | {row['frames']} | "
                    f"{sampling} | {row['method']} | {row['clips']} | {row['seconds']:.1f} | {row['peak_mib']:.0f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
