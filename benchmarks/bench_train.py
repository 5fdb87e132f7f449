"""Training input benchmark: the seed's in-RAM float32 arrays vs the streaming shard loader.

Same model (``build_model``, default arch), same shards, one epoch each, every run in its own process:

(a) ``arrays``: every shard loaded up front as float32 (the seed's way), ``model.fit(x, y, shuffle=True)``;
(b) ``streaming``: ``data.ClipLoader`` over the shards, ``model.fit(loader)``;
(c) ``loader``: the loader alone (no model), one thread: clips/s per core, on the shards as processing writes them
    (deflated npz members) and rewritten uncompressed.

Each of (a) and (b) runs on the data set and on the same set x10 (ten hosts' copies of the shards), reporting
training throughput (clips/s after the first steps, so compilation is excluded) and peak RSS (``ru_maxrss``).
Targets (issue 3): (b) >= 0.95x (a); RSS(b, x10) <= 1.2x RSS(b, x1); (c) >= 5,000 clips/s per core at 15x32x32x3.

(d) ``--hosts N``: the multi-host path instead (JAX backend): 1 and then N ``hosts`` (processes joined through JAX's
    distributed runtime on 127.0.0.1, as on N instances), the same global batch, each host on its own part of the
    clips; clips/s per host and in total after the first steps, the step time, and the time of one all-reduce of the
    model's gradients (all parameters, float32) across the hosts. On one machine the N processes share its cores, so
    one host is also timed alone on one host's part of the batch (``batch_size / N``): on N real instances a step
    takes about that step time plus the all-reduce time, which gives the expected scaling.

Usage::

    python benchmarks/bench_train.py                      # everything, CPU
    KERAS_BACKEND=jax python benchmarks/bench_train.py --streaming-only   # GPU machine without TensorFlow
    python benchmarks/bench_train.py --hosts 2 --clips 256 --batch-size 16   # multi-host scaling

With ``nvidia-smi`` on the PATH, GPU utilisation is sampled during each training run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from video3dcnn import shards  # noqa: E402
from video3dcnn.config import ClipSpec  # noqa: E402
from video3dcnn.files import write_json_atomic  # noqa: E402
from video3dcnn.synthetic import DIRECTIONS, motion_frames  # noqa: E402

CLASSES = tuple(DIRECTIONS)
WARMUP_STEPS = 5


def write_data(directory: Path, clips: int, spec: ClipSpec, shard_size: int, copies: int, compress: bool = True) -> Path:
    """Motion clips (video3dcnn.synthetic) in shards; ``copies`` hosts each hold the same shards (file copies)."""
    rng = np.random.default_rng(0)
    labels = np.arange(clips, dtype=np.int32) % len(CLASSES)
    frames = np.stack([motion_frames(CLASSES[k], rng, spec.frames, spec.height, spec.width) for k in labels])
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, start in enumerate(range(0, clips, shard_size)):
        rows = slice(start, start + shard_size)
        count = len(labels[rows])
        shard = shards.Shard(frames[rows], labels[rows], np.array([f"g{i}" for i in range(count)]),
                             np.zeros(count, bool), np.array([f"{i}.mp4" for i in range(count)]),
                             np.tile(np.arange(spec.frames, dtype=np.int32), (count, 1)))
        shards.write_shard(directory / shards.shard_name("algo-1", number), shard, compress=compress)
        entries.append({"number": number, "clips": count, "train": count, "validation": 0})
    for copy in range(1, copies + 1):
        _write_manifest(directory, f"algo-{copy}", spec, entries)
    shards.write_classes(directory, CLASSES)
    return directory


def _write_manifest(directory: Path, host: str, spec: ClipSpec, entries: list[dict]) -> None:
    listed = []
    for entry in entries:
        name = shards.shard_name(host, entry["number"])
        if not (directory / name).exists():
            shutil.copyfile(directory / shards.shard_name("algo-1", entry["number"]), directory / name)
        listed.append({"file": name, **{key: entry[key] for key in ("clips", "train", "validation")}})
    manifest = {"schema_version": shards.SCHEMA_VERSION, "host": host, "classes": list(CLASSES),
                "clip_spec": spec.to_dict(), "shards": listed, "skipped": []}
    write_json_atomic(directory / shards.manifest_name(host), manifest)


def rewrite_uncompressed(directory: Path) -> None:
    """Rewrite every shard with stored (not deflated) members: same content, no zlib on the read path."""
    for path in sorted(directory.glob("*.npz")):
        shards.write_shard(path, shards.read_shard(path), compress=False)


class GpuSampler:
    """Samples ``nvidia-smi`` GPU utilisation every 200 ms in the background (no-op without nvidia-smi)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._process = None
        self._thread = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"]
            self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        for line in self._process.stdout:
            try:
                self.samples.append(float(line.split(",")[0]))
            except ValueError:
                pass

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait()

    @property
    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def _step_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.times.append(time.perf_counter())

    return StepTimer()


def _load_arrays(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """The seed's way: every clip in RAM as float32."""
    index = shards.load_index(directory)
    parts = [shards.read_shard(info.path, keys=("clips", "labels")) for info in index.shards]
    x = np.concatenate([p["clips"] for p in parts]).astype(np.float32)
    y = np.concatenate([p["labels"] for p in parts])
    return x, y


def run_child(mode: str, directory: Path, batch_size: int, workers: int, buffer_mb: int) -> dict:
    """One measurement in this process; returns clips/s, peak RSS and GPU utilisation."""
    import keras

    from video3dcnn.data import ClipLoader, subset_rows
    from video3dcnn.model import build_model
    from video3dcnn.training import window_clips

    index = shards.load_index(directory)
    if mode == "loader":
        return _time_loader(index, batch_size, window_clips(buffer_mb, index.clip_spec.shape))
    model = build_model(index.clip_spec.shape, len(index.classes))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = _step_timer()
    with GpuSampler() as gpu:
        if mode == "arrays":
            x, y = _load_arrays(directory)
            model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0, callbacks=[timer])
        else:
            loader = ClipLoader(subset_rows(index, "all"), "all", batch_size, shuffle=True, workers=workers,
                                buffer_clips=window_clips(buffer_mb, index.clip_spec.shape))
            model.fit(loader, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    steps = len(timer.times) - WARMUP_STEPS
    seconds = timer.times[-1] - timer.times[WARMUP_STEPS - 1]
    return {"clips_per_second": round(steps * batch_size / seconds, 1), "clips": index.num_train,
            "peak_rss_mb": _peak_rss_mb(), "gpu_utilisation": gpu.mean, "backend": keras.backend.backend()}


def _time_loader(index, batch_size: int, buffer_clips: int) -> dict:
    from video3dcnn.data import ClipLoader, subset_rows

    loader = ClipLoader(subset_rows(index, "all"), "all", batch_size, shuffle=True, buffer_clips=buffer_clips)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    clips = sum(len(loader[i][1]) for i in range(len(loader)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"clips_per_second": round(clips / wall, 1), "clips_per_cpu_second": round(clips / cpu, 1),
            "clips": clips, "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_host(directory: Path, batch_size: int, workers: int, buffer_mb: int, rank: int, world: int, port: int) -> dict:
    """One host of a ``world``-host job in this process: clips/s of its part, step time, all-reduce time."""
    os.environ["KERAS_BACKEND"] = "jax"
    from video3dcnn import distribute
    from video3dcnn.contract import Hosts
    from video3dcnn.data import split_loaders
    from video3dcnn.hyperparameters import TrainConfig
    from video3dcnn.model import build_model
    from video3dcnn.training import compile_model, window_clips

    names = tuple(f"algo-{i + 1}" for i in range(world))
    placement = distribute.setup(Hosts(names[rank], names), None, coordinator=f"127.0.0.1:{port}")
    import keras

    keras.utils.set_random_seed(0)  # every host builds the same initial weights, as training.train does
    index = shards.load_index(directory)
    loader, _ = split_loaders(index, None, batch_size, placement.share,
                              buffer_clips=window_clips(buffer_mb, index.clip_spec.shape), workers=workers)
    model = compile_model(build_model(index.clip_spec.shape, len(index.classes)), TrainConfig(), len(loader))
    timer = _step_timer()
    model.fit(loader, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    steps = len(timer.times) - WARMUP_STEPS
    seconds = timer.times[-1] - timer.times[WARMUP_STEPS - 1]
    host_batch = placement.share.host_batch(batch_size)
    result = {"host": rank + 1, "hosts": world, "clips_per_second": round(steps * host_batch / seconds, 1),
              "step_ms": round(1000 * seconds / steps, 1), "clips_per_step": host_batch,
              "parameters": model.count_params(), "allreduce_ms": None}
    if world > 1:
        result["allreduce_ms"] = _time_allreduce(model.count_params())
    distribute.finish(0)
    return result


def _time_allreduce(parameters: int, repeats: int = 20) -> float:
    """Milliseconds of one all-reduce of ``parameters`` float32 over every device (what each step does to the
    gradients), as XLA compiles it for a sum over a batch-sharded array."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()), ("batch",))
    local = np.ones((jax.local_device_count(), parameters), np.float32)
    array = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("batch")), local)
    reduce = jax.jit(lambda a: a.sum(axis=0), out_shardings=NamedSharding(mesh, PartitionSpec()))
    reduce(array).block_until_ready()
    started = time.perf_counter()
    for _ in range(repeats):
        reduce(array).block_until_ready()
    return round(1000 * (time.perf_counter() - started) / repeats, 2)


def measure_hosts(directory: Path, args: argparse.Namespace, world: int) -> dict:
    """A ``world``-host job, one process per host; per-host results and the total clips/s."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    processes = [
        subprocess.Popen([sys.executable, __file__, "--child", "host", str(directory), "--batch-size",
                          str(args.batch_size), "--workers", str(args.workers), "--shuffle-buffer-mb",
                          str(args.shuffle_buffer_mb), "--rank", str(rank), "--world", str(world), "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for rank in range(world)
    ]
    hosts = []
    for process in processes:
        out, err = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise RuntimeError(f"a host of the {world}-host run failed:\n{err[:3000]}")
        hosts.append(json.loads(out.strip().splitlines()[-1]))
    result = {"hosts": hosts, "total_clips_per_second": round(sum(h["clips_per_second"] for h in hosts), 1)}
    print(f"  {world} host(s): {json.dumps(result)}", flush=True)
    return result


def run_hosts(args: argparse.Namespace) -> int:
    """1 host, N hosts and one host's part alone, interleaved ``args.repeats`` times; the median run of each."""
    spec = ClipSpec(frames=15, height=32, width=32)
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "spec": list(spec.shape), "clips": args.clips, "batch_size": args.batch_size}
    part = argparse.Namespace(**{**vars(args), "batch_size": -(-args.batch_size // args.hosts)})
    configs = {"hosts_1": (args, 1), f"hosts_{args.hosts}": (args, args.hosts), "one_host_part": (part, 1)}
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="bench_hosts_") as tmp:
        directory = write_data(Path(tmp) / "x1", args.clips, spec, args.shard_size, 1, not args.uncompressed)
        for _ in range(args.repeats):
            for name, (options, world) in configs.items():
                runs[name].append(measure_hosts(directory, options, world))
    for name, measured in runs.items():
        ordered = sorted(measured, key=lambda run: run["hosts"][0]["step_ms"])
        results[name] = {**ordered[len(ordered) // 2], "runs_step_ms": [run["hosts"][0]["step_ms"] for run in ordered]}
    one, many = results["hosts_1"]["hosts"][0], results[f"hosts_{args.hosts}"]["hosts"][0]
    part_ms, allreduce = results["one_host_part"]["hosts"][0]["step_ms"], many["allreduce_ms"] or 0.0
    results["expected_speedup"] = round(one["step_ms"] / (part_ms + allreduce), 2)
    print(f"total clips/s: 1 host {results['hosts_1']['total_clips_per_second']}, {args.hosts} hosts "
          f"{results[f'hosts_{args.hosts}']['total_clips_per_second']} (sharing this machine's cores); step "
          f"{one['step_ms']} ms on 1 host, {many['step_ms']} ms on {args.hosts}, {part_ms} ms for one host's part "
          f"alone; all-reduce of {many['parameters']} parameters {allreduce} ms; expected on {args.hosts} "
          f"instances: {results['expected_speedup']}x one host")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def measure(mode: str, directory: Path, args: argparse.Namespace) -> dict:
    """Run ``mode`` ``args.repeats`` times, each in a fresh process (so peak RSS belongs to that run alone); keep
    the run with the median throughput (the machine may be shared)."""
    runs = sorted((_measure_once(mode, directory, args) for _ in range(args.repeats)),
                  key=lambda r: r["clips_per_second"])
    result = {**runs[len(runs) // 2], "runs_clips_per_second": [r["clips_per_second"] for r in runs]}
    print(f"  {mode:9s} {directory.name:4s} {json.dumps(result)}", flush=True)
    return result


def _measure_once(mode: str, directory: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", mode, str(directory), "--batch-size", str(args.batch_size),
               "--workers", str(args.workers), "--shuffle-buffer-mb", str(args.shuffle_buffer_mb)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} on {directory} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=512, help="clips in the x1 data set (default: 512)")
    parser.add_argument("--scale", type=int, default=10, help="copies in the large data set (default: 10)")
    parser.add_argument("--shard-size", type=int, default=128, help="clips per shard (default: 128)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="loader threads (default: 2)")
    parser.add_argument("--shuffle-buffer-mb", type=int, default=64, help="loader memory for decoded clips")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is kept")
    parser.add_argument("--uncompressed", action="store_true", help="write stored (not deflated) shards")
    parser.add_argument("--streaming-only", action="store_true", help="skip (a): no TensorFlow-only comparison")
    parser.add_argument("--hosts", type=int,
                        help="measure 1 and this many hosts instead (JAX, processes on this machine)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    for name in ("--rank", "--world", "--port"):
        parser.add_argument(name, type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.child[0] == "host":
        print(json.dumps(run_host(Path(args.child[1]), args.batch_size, args.workers, args.shuffle_buffer_mb,
                                  args.rank, args.world, args.port)))
        return 0
    if args.child:
        print(json.dumps(run_child(args.child[0], Path(args.child[1]), args.batch_size, args.workers,
                                   args.shuffle_buffer_mb)))
        return 0
    return run_hosts(args) if args.hosts else run_all(args)


def run_all(args: argparse.Namespace) -> int:
    spec = ClipSpec(frames=15, height=32, width=32)
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "python": platform.python_version(), "spec": list(spec.shape), "batch_size": args.batch_size,
                     "workers": args.workers, "shuffle_buffer_mb": args.shuffle_buffer_mb,
                     "compressed_shards": not args.uncompressed}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        compress = not args.uncompressed
        sets = {"x1": write_data(Path(tmp) / "x1", args.clips, spec, args.shard_size, 1, compress),
                f"x{args.scale}": write_data(Path(tmp) / f"x{args.scale}", args.clips, spec, args.shard_size,
                                             args.scale, compress)}
        modes = ["streaming"] if args.streaming_only else ["arrays", "streaming"]
        for name, directory in sets.items():
            for mode in modes:
                results[f"{mode}_{name}"] = measure(mode, directory, args)
        results["loader"] = measure("loader", sets[f"x{args.scale}"], args)
        rewrite_uncompressed(sets[f"x{args.scale}"])
        results["loader_uncompressed"] = measure("loader", sets[f"x{args.scale}"], args)
    summarise(results, args.scale)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def summarise(results: dict, scale: int) -> None:
    """Print the ratios the targets are stated in."""
    big = f"x{scale}"
    lines = []
    if "arrays_x1" in results:
        for name in ("x1", big):
            ratio = results[f"streaming_{name}"]["clips_per_second"] / results[f"arrays_{name}"]["clips_per_second"]
            lines.append(f"throughput streaming/arrays {name}: {ratio:.2f} (target >= 0.95)")
        rss = results[f"arrays_{big}"]["peak_rss_mb"] / results["arrays_x1"]["peak_rss_mb"]
        lines.append(f"peak RSS arrays {big}/x1: {rss:.2f}")
    rss = results[f"streaming_{big}"]["peak_rss_mb"] / results["streaming_x1"]["peak_rss_mb"]
    lines.append(f"peak RSS streaming {big}/x1: {rss:.2f} (target <= 1.2)")
    for key in ("loader", "loader_uncompressed"):
        lines.append(f"{key} alone: {results[key]['clips_per_cpu_second']:.0f} clips per CPU-second (target >= 5000)")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
