"""Inference server benchmark: requests/s and p50/p99 latency of ``video3dcnn serve`` (not a timed test).

Two payloads, each with 1 and 2 gunicorn workers, side by side in one run:

(a) ``video``: one 10 s 320x240 H.264 .mp4 (25 fps, libx264 veryfast CRF 18 from the ffmpeg of ``imageio-ffmpeg``,
    ``video3dcnn.synthetic`` motion), POSTed whole as ``video/mp4``: the server writes it to a temporary file, decodes
    it with the model's clip spec as ``video3dcnn process`` would, and runs the model;
(b) ``npy``: the same video's clip, decoded beforehand, POSTed as ``application/x-npy``: the model call plus HTTP.

The model is an untrained ``bn`` network for the default clip spec (15 frames, 32x32 RGB, uniform sampling, four
classes): weights do not change the time of a prediction. Each cell is a closed loop: ``--concurrency`` clients per
worker (default 1) send requests back to back over kept-alive connections for ``--seconds``, after a warm-up of two
requests per client; every answer must be 200. The server runs natively (this interpreter's ``video3dcnn serve``) or,
with ``--image``, as ``docker run <image> serve``. The clients run on the same machine and take some of its CPU.

Usage: ``python benchmarks/bench_serve.py [--seconds 30] [--workers 1 2] [--concurrency 1] [--image TAG]``
(about 4 x (--seconds + 20 s of start-up) in all).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # the project's synthetic-video kit (ffmpeg writer)

from video3dcnn.config import ClipSpec  # noqa: E402

SPEC = ClipSpec()
CLASSES = ("MoveDown", "MoveLeft", "MoveRight", "MoveUp")
WARMUP_PER_CLIENT = 2
START_TIMEOUT_S = 300


def make_model(directory: Path) -> Path:
    """An untrained model directory for ``SPEC`` (what ``video3dcnn train`` writes)."""
    from trainkit import write_model_dir

    return write_model_dir(directory, SPEC, CLASSES)


def make_payloads(directory: Path) -> dict[str, tuple[bytes, str]]:
    """``{"video": (mp4 bytes, "video/mp4"), "npy": (npy bytes, "application/x-npy")}``."""
    from videos import write_frames

    from video3dcnn.synthetic import motion_frames
    from video3dcnn.video import decode_clips

    frames = motion_frames("MoveLeft", np.random.default_rng(0), 250, 240, 320)
    video = write_frames(directory / "video.mp4", frames, fps=25.0, codec="h264")
    buffer = io.BytesIO()
    np.save(buffer, decode_clips(video, SPEC).clips)
    return {"video": (video.read_bytes(), "video/mp4"), "npy": (buffer.getvalue(), "application/x-npy")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``video3dcnn serve`` with ``workers`` workers on a free port, natively or in ``image``."""

    def __init__(self, model_dir: Path, workers: int, image: str | None, log: Path) -> None:
        self.port = free_port()
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self._container = None
        if image:
            self._container = f"bench-serve-{os.getpid()}-{workers}"
            command = ["docker", "run", "--rm", "--name", self._container, "-p", f"127.0.0.1:{self.port}:8080",
                       "-e", f"SAGEMAKER_MODEL_SERVER_WORKERS={workers}", "-v", f"{model_dir}:/opt/ml/model:ro",
                       image, "serve"]  # fmt: skip
        else:
            command = [sys.executable, "-m", "video3dcnn", "serve", "--model-dir", str(model_dir), "--host",
                       "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_healthy(self) -> float:
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT_S:
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited ({self._process.returncode}); see {self._log.name}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/ping")
                if connection.getresponse().status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"no healthy /ping within {START_TIMEOUT_S} s; see {self._log.name}")

    def stop(self) -> None:
        if self._container:
            subprocess.run(["docker", "stop", self._container], capture_output=True, timeout=60)
        else:
            self._process.send_signal(signal.SIGTERM)
        self._process.wait(timeout=60)
        self._log.close()


@dataclass
class Cell:
    payload: str
    workers: int
    clients: int
    latencies: list[float]
    seconds: float
    startup_s: float

    def row(self) -> str:
        latencies = np.array(self.latencies) * 1000
        rate = len(latencies) / self.seconds
        p50, p99 = np.percentile(latencies, 50), np.percentile(latencies, 99)
        return (f"| {self.payload} | {self.workers} | {self.clients} | {len(latencies)} | {rate:.1f} | {p50:.1f} | "
                f"{p99:.1f} | {self.startup_s:.0f} |")  # fmt: skip


def client_loop(port: int, body: bytes, content_type: str, stop_at: float, warmup: int, out: list[float]) -> None:
    """Send ``body`` back to back on one kept-alive connection until ``stop_at``; append each latency to ``out``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    sent = 0
    while True:
        started = time.perf_counter()
        if time.monotonic() >= stop_at and sent >= warmup:
            break
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {answer[:300]!r}")
        sent += 1
        if sent > warmup:
            out.append(time.perf_counter() - started)
    connection.close()


def run_cell(server: Server, payload: str, body: bytes, content_type: str, workers: int, clients: int,
             seconds: float, startup_s: float) -> Cell:  # fmt: skip
    latencies: list[float] = []
    warmup_done = time.monotonic() + 1.0  # warm-up requests are sent first and not counted
    stop_at = warmup_done + seconds
    arguments = (server.port, body, content_type, stop_at, WARMUP_PER_CLIENT, latencies)
    threads = [threading.Thread(target=client_loop, args=arguments) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    measured = max(time.monotonic() - started - 1.0, 1e-6)
    return Cell(payload, workers, clients, latencies, measured, startup_s)


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.processor() or platform.machine()}, {cores} usable cores, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per cell (default: 30)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default: 1 2)")
    parser.add_argument("--concurrency", type=int, default=1, help="clients per worker (default: 1)")
    parser.add_argument("--image", help="benchmark `docker run IMAGE serve` instead of the native server")
    parser.add_argument("--workdir", type=Path, help="keep the model, videos and server logs here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = make_model(workdir / "model")
    payloads = make_payloads(workdir)
    print(f"# video3dcnn serve benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}")
    print(f"# server: {args.image or 'native'}; video {len(payloads['video'][0]) / 1e6:.2f} MB, npy clip "
          f"{len(payloads['npy'][0]) / 1e3:.1f} kB; {args.seconds:.0f} s per cell")  # fmt: skip
    print("| payload | workers | clients | requests | requests/s | p50 ms | p99 ms | start-up s |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for workers in args.workers:
        server = Server(model_dir, workers, args.image, workdir / f"server-{workers}.log")
        try:
            startup_s = server.wait_healthy()
            for name, (body, content_type) in payloads.items():
                cell = run_cell(server, name, body, content_type, workers, workers * args.concurrency, args.seconds,
                                startup_s)  # fmt: skip
                print(cell.row(), flush=True)
                results.append({"payload": name, "workers": workers, "requests": len(cell.latencies),
                                "seconds": cell.seconds, "p50_ms": float(np.percentile(cell.latencies, 50) * 1000),
                                "p99_ms": float(np.percentile(cell.latencies, 99) * 1000)})  # fmt: skip
        finally:
            server.stop()
    print(json.dumps({"machine": machine(), "server": args.image or "native", "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
