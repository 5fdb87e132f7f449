"""Distribution: several hosts through JAX's distributed runtime, several devices through Keras' ``DataParallel``.

Several hosts and several devices need ``KERAS_BACKEND=jax`` (the training image's backend); a single device trains
on any backend without distribution. Keras 3's ``fit`` does not support TensorFlow's ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585), which is why multi-host training runs on JAX.

- Several hosts (``SM_HOSTS``): every host starts ``jax.distributed`` with the first host in sorted order (the chief)
  as coordinator at ``<chief>:<port>``; CPU collectives go through gloo, GPU ones through NCCL.
- Every host's devices (one CPU device per host, or its GPUs) form one ``DataParallel`` mesh: the weights are
  replicated, each step's global batch is split over all devices, and each host feeds its own part of it
  (``auto_shard_dataset=False``; ``data.split_loaders`` gives each host its own clips).
- Only the chief writes model, outputs and checkpoints (``Placement.solo``: Keras' saving creates variables, which
  under a multi-process distribution would be collectives).
- A stop (SIGTERM) is agreed through the coordinator's key-value store: the first host that gets it names a batch
  all hosts still have ahead of them (``Runtime.agree_stop``); all stop after that batch, the chief writes the
  checkpoint, and the others wait for it (at most ``STOP_SAVE_WAIT_S``) before they leave.
- ``Watchdog``: a host that never joins, dies or hangs ends the others within ``host_timeout_seconds`` with a reason
  naming it, instead of leaving them blocked in a collective until the job's MaxRuntime.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from video3dcnn.contract import Hosts, write_failure
from video3dcnn.errors import ClusterError, ConfigError
from video3dcnn.partition import Share

logger = logging.getLogger(__name__)

COORDINATOR_PORT = 8890  # the port AWS's TensorFlow containers use for their workers; free on SageMaker instances
JAX_GRACE_S = 60  # JAX's own timeouts are ours plus this, so that our reason is written before JAX aborts
BEACON_KEY = "video3dcnn/beacon/{}"
SILENT_BEACONS = 3  # a host whose beacon has not changed for this many intervals is taken for gone
STOP_KEY = "video3dcnn/stop-after-batch"
STOP_SAVED_KEY = "video3dcnn/stop-checkpoint-saved"
STOP_SAVE_WAIT_S = 15  # how long the other hosts wait for the chief's stop checkpoint (inside a 20 s grace)

_active: Runtime | None = None  # the runtime this process started (JAX's is process-wide too)


def backend() -> str:
    """The Keras backend in use (``jax``, ``tensorflow``, ``torch``...)."""
    import keras

    return keras.backend.backend()


@dataclass
class Placement:
    """Where this process sits in the job, and the hooks training needs from the distribution.

    Attributes:
        host: this host's name (goes into checkpoint file names).
        hosts: all hosts, sorted; the first is the chief.
        share: this host's part of the data and batches (``partition.Share``).
        runtime: the multi-host runtime, or None on a single host.
    """

    host: str
    hosts: tuple[str, ...]
    share: Share = field(default_factory=Share)
    runtime: Runtime | None = None

    @classmethod
    def single(cls, host: str = "localhost") -> Placement:
        """One host, one device: no distribution."""
        return cls(host, (host,))

    @property
    def is_chief(self) -> bool:
        return self.share.index == 0

    @property
    def strategy(self) -> str:
        return "data_parallel" if self.share.replicas > 1 else "none"

    def describe(self) -> str:
        return (f"host {self.host}: {self.share.index + 1} of {self.share.hosts}, {self.share.devices} device(s) "
                f"each, {self.share.replicas} replica(s) in all")

    def solo(self) -> contextlib.AbstractContextManager:
        """A block only this host runs (the chief's saving): Keras without the multi-process distribution, and the
        watchdog paused (this host waits for nobody meanwhile; the others see its beacon)."""
        if self.share.replicas == 1:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(_without_distribution())
        if self.runtime is not None:
            stack.enter_context(self.runtime.watchdog.phase(None))
        return stack

    def progress(self) -> None:
        """A step completed (the watchdog's sign of progress)."""
        if self.runtime is not None:
            self.runtime.watchdog.progress()

    def starting(self, loop: str) -> None:
        """A ``train``, ``test`` or ``predict`` loop begins (its first step may compile for a while)."""
        if self.runtime is not None:
            self.runtime.watchdog.starting(loop)

    def agree_stop(self, requested: bool, batches: int) -> bool:
        """Whether every host stops after its ``batches``-th training batch of this run (``callbacks.GracefulStop``).

        ``requested``: this host got SIGTERM. One host alone stops as soon as it is asked; several agree on a batch.
        """
        if self.runtime is None:
            return requested
        return self.runtime.agree_stop(requested, batches)

    def stop_saved(self) -> None:
        """After an agreed stop: the chief tells the others its checkpoint is written; they wait for that."""
        if self.runtime is not None:
            self.runtime.stop_saved()

    def gather(self, value: int) -> list[int]:
        """``value`` of every host, in host order (a collective: every host must call it)."""
        if self.share.hosts == 1:
            return [value]
        import numpy as np
        from jax.experimental import multihost_utils

        return [int(v) for v in multihost_utils.process_allgather(np.array([value], np.int64), tiled=True)]

    def explain(self, exc: Exception) -> Exception:
        """``exc``, or a ClusterError naming the lost hosts when it is a failed collective."""
        if self.runtime is None or not is_collective_error(exc):
            return exc
        return self.runtime.explain(exc)


def setup(
    hosts: Hosts,
    num_gpus: int | None,
    host_timeout: float = 300,
    failure_path: Path | None = None,
    coordinator: str | None = None,
    exit_code: int = 2,
) -> Placement:
    """Join the other hosts (if any) and spread training over every device; call before building the model.

    Args:
        hosts: this host and its peers (``TrainingEnv.hosts``).
        num_gpus: GPUs on this host per ``SM_NUM_GPUS`` (None when unknown); only checked against what JAX sees.
        host_timeout: seconds to wait for another host (to join, to complete a step) before giving up.
        failure_path: where a host that gives up writes its reason (``/opt/ml/output/failure`` in a job).
        coordinator: ``HOST:PORT`` where the others reach the chief's coordinator (default: the chief's host name
            and ``COORDINATOR_PORT``).
        exit_code: the exit code of a host that gives up on the others (``cli.main``'s for a ToolkitError).

    Returns:
        This host's placement.

    Raises:
        ConfigError: several hosts on a backend other than JAX, or a host list without this host.
    """
    ordered = tuple(sorted(hosts.all)) or (hosts.current,)
    if hosts.current not in ordered:
        raise ConfigError(f"current host {hosts.current!r} is not among the hosts {list(ordered)}: check "
                          "resourceconfig.json")
    if backend() != "jax":
        return _single_device(hosts.current, ordered, num_gpus)
    runtime = None
    if len(ordered) > 1:
        coordinator = coordinator or f"{ordered[0]}:{COORDINATOR_PORT}"
        runtime = Runtime(ordered, ordered.index(hosts.current), host_timeout, failure_path, coordinator, exit_code)
        runtime.start()
    placement = Placement(hosts.current, ordered, _share(ordered.index(hosts.current), len(ordered), num_gpus), runtime)
    if placement.share.replicas > 1:
        _set_data_parallel()
    logger.info("%s", placement.describe())
    return placement


def finish(code: int) -> None:
    """Leave the multi-host job this process joined (if any) with exit code ``code``: see ``Runtime.finish``."""
    if _active is not None:
        _active.finish(code)


def _single_device(current: str, ordered: tuple[str, ...], num_gpus: int | None) -> Placement:
    if len(ordered) > 1:
        raise ConfigError(
            f"training on {len(ordered)} hosts needs KERAS_BACKEND=jax (the backend is {backend()}): Keras 3 cannot "
            "train across hosts on TensorFlow; the training image uses JAX"
        )
    if (num_gpus or 0) > 1:
        logger.warning("%d GPUs but KERAS_BACKEND=%s: training on one (several devices need jax)", num_gpus, backend())
    return Placement.single(current)


def _share(index: int, count: int, num_gpus: int | None) -> Share:
    import jax

    devices = jax.local_devices()
    if (num_gpus or 0) > 0 and devices[0].platform == "cpu":
        logger.warning("SM_NUM_GPUS=%d but JAX sees no GPU: this image has CPU-only JAX (see docs/images.md, GPU "
                       "variant); training on the CPU", num_gpus)
    return Share(index, count, len(devices))


def _set_data_parallel() -> None:
    import keras

    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
    logger.info("Keras DataParallel over %d devices: %s", len(devices), ", ".join(devices))


@contextlib.contextmanager
def _without_distribution() -> Iterator[None]:
    import keras

    saved = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(saved)


class Runtime:
    """JAX's distributed runtime for one host of a multi-host job, watched by a ``Watchdog``.

    Args:
        hosts: all hosts, sorted; process ``i`` is ``hosts[i]`` and ``hosts[0]`` (the chief) runs the coordinator.
        index: this host's position.
        host_timeout: see ``setup``.
        failure_path: where the reason of a failure goes.
        coordinator: ``HOST:PORT`` of the coordinator the chief runs.
        exit_code: the exit code of a host that gives up.
    """

    def __init__(self, hosts: tuple[str, ...], index: int, host_timeout: float, failure_path: Path | None,
                 coordinator: str, exit_code: int) -> None:
        self.hosts, self.index, self.host_timeout = hosts, index, host_timeout
        self.failure_path, self.exit_code = failure_path, exit_code
        self.coordinator = coordinator
        self.watchdog = Watchdog(self, host_timeout)
        self._stop_published = False
        self._stop_at: int | None = None

    @property
    def host(self) -> str:
        return self.hosts[self.index]

    @property
    def chief(self) -> str:
        return self.hosts[0]

    def start(self) -> None:
        """Join the other hosts (within ``host_timeout``), then start the beacons."""
        import jax

        global _active

        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        _active = self
        logger.info("host %s joining %d hosts through the coordinator %s (timeout %.0f s)", self.host,
                    len(self.hosts), self.coordinator, self.host_timeout)
        self.watchdog.start()
        with self.watchdog.phase("joining"):
            jax.distributed.initialize(
                self.coordinator, len(self.hosts), self.index, cluster_detection_method="deactivate",
                initialization_timeout=int(self.host_timeout + JAX_GRACE_S),
                heartbeat_timeout_seconds=int(self.host_timeout + JAX_GRACE_S),
                shutdown_timeout_seconds=JAX_GRACE_S,
            )  # fmt: skip
        self.watchdog.joined()
        logger.info("all %d hosts joined: %s", len(self.hosts), ", ".join(self.hosts))
        if self.index > 0:
            # JAX ends this process at once, from a thread of its own, when it loses the coordinator: the reason must
            # be on disk beforehand. Replaced by a better one when this host fails otherwise; removed on success.
            write_failure(self.failure_path, f"{self.host}: lost the chief {self.chief} (JAX's coordinator), which "
                          "stopped, died or became unreachable; JAX then ends every other host. See its log.")

    def finish(self, code: int) -> None:
        """Leave the job: on success after every host got here; on failure at once, without JAX's shutdown barrier."""
        if code != 0:
            self.leave(code)
        from jax.experimental import multihost_utils

        with self.watchdog.phase("the final barrier (waiting for the chief's model)", waits_for_steps=False):
            multihost_utils.sync_global_devices("video3dcnn-done")
        self.watchdog.stop()
        import jax

        jax.distributed.shutdown()
        if self.index > 0 and self.failure_path is not None:
            self.failure_path.unlink(missing_ok=True)
        logger.info("host %s left the job", self.host)

    def agree_stop(self, requested: bool, batches: int, client=None) -> bool:
        """See ``Placement.agree_stop``.

        A host asked to stop publishes ``batches + 1`` unless a host was first. That batch is still ahead of every
        host: another host cannot complete batch ``batches + 1`` (a collective) before this one starts it, which it
        does after publishing, and every host reads the key after each batch, so all stop after the same batch.
        """
        client = client or _client()
        if requested and not self._stop_published:
            self._stop_published = True
            try:
                client.key_value_set(STOP_KEY, str(batches + 1))
                logger.info("host %s asks every host to stop after batch %d of this run", self.host, batches + 1)
            except Exception:  # noqa: BLE001 - ALREADY_EXISTS: another host asked first, its batch holds
                pass
        if self._stop_at is None:
            value = _try_get(client, STOP_KEY)
            self._stop_at = int(value) if value else None
        return self._stop_at is not None and batches >= self._stop_at

    def stop_saved(self, client=None) -> None:
        """See ``Placement.stop_saved``."""
        client = client or _client()
        if self.index == 0:
            client.key_value_set(STOP_SAVED_KEY, "1")
            return
        try:
            client.blocking_key_value_get(STOP_SAVED_KEY, STOP_SAVE_WAIT_S * 1000)
        except Exception as exc:  # noqa: BLE001 - the chief died or is slow: leave anyway, the grace is short
            logger.warning("host %s: the chief's stop checkpoint was not confirmed within %d s (%s)", self.host,
                           STOP_SAVE_WAIT_S, " ".join(str(exc).split())[:200])

    def give_up(self, reason: str) -> None:
        """Write ``reason`` as this host's failure and leave (called by the watchdog, whose host cannot go on)."""
        write_failure(self.failure_path, reason)
        logger.error("%s", reason)
        self.leave(self.exit_code)

    def leave(self, code: int) -> None:
        """End the process now: JAX's exit handler would wait for hosts that are gone, then abort."""
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def explain(self, exc: BaseException) -> ClusterError:
        """The ClusterError for a collective that failed: names the hosts that stopped sending beacons."""
        silent = self.watchdog.silent_hosts(wait=True)
        detail = " ".join(str(exc).split())[:300]
        return ClusterError(f"{self.host}: {self.watchdog.describe_lost(silent)} during "
                            f"{self.watchdog.phase_name} ({detail})")


def is_collective_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed cross-host collective (gloo/NCCL or JAX's coordination service)."""
    return bool(re.search(r"gloo|nccl|coordination|connection (reset|closed|refused)|UNAVAILABLE|DEADLINE_EXCEEDED",
                          str(exc), re.IGNORECASE))


class Watchdog:
    """Ends a host that waits too long for the others, with a reason naming the hosts it lost.

    A background thread publishes this host's beacon (a value that changes every ``interval`` seconds, in JAX's
    key-value store on the chief) and watches the others'. From ``start`` to ``stop`` the host is in a phase
    (joining, training, the final barrier) or paused (``phase(None)``: the chief writing the model). While joining
    it gives up after ``timeout`` seconds; in a phase that waits for steps, when no step completed for ``timeout``
    seconds (except before the first step of each loop, which compiles); in any phase, when another host stayed
    silent that long. The reason names the silent hosts, or the chief when the coordinator cannot be reached.

    Args:
        runtime: the runtime whose hosts are watched and which gives up.
        timeout: seconds.
    """

    def __init__(self, runtime: Runtime, timeout: float) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.interval = max(0.5, min(10.0, timeout / 10))
        self._lock = threading.Lock()
        self._phase: tuple[str, bool] | None = None
        self._last_progress = time.monotonic()
        self._warming = True  # until a step completes: compiling, building the model, loading a checkpoint
        self._loops: set[str] = set()
        self._joined = False
        self._seen: dict[int, tuple[str | None, float]] = {}  # host index -> (beacon, when it last changed)
        self._unreachable_since: float | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="video3dcnn-watchdog", daemon=True)

    @property
    def phase_name(self) -> str:
        return self._phase[0] if self._phase else "a pause"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def joined(self) -> None:
        """All hosts are in: watch their beacons, and the training steps from now on."""
        now = time.monotonic()
        with self._lock:
            self._joined = True
            self._seen = {i: (None, now) for i in range(len(self.runtime.hosts)) if i != self.runtime.index}
            self._phase, self._last_progress = ("training", True), now

    def progress(self) -> None:
        with self._lock:
            self._last_progress, self._warming = time.monotonic(), False

    def starting(self, loop: str) -> None:
        """The first time a loop begins, wait for its first step without a deadline (XLA compiles it meanwhile;
        with fixed batch shapes every later step reuses that program): only silent hosts count until then."""
        with self._lock:
            if loop not in self._loops:
                self._loops.add(loop)
                self._warming = True

    @contextlib.contextmanager
    def phase(self, name: str | None, waits_for_steps: bool = True) -> Iterator[None]:
        """Watch the block as phase ``name`` (None: pause the step deadline), then restore the previous phase."""
        with self._lock:
            previous = self._phase
            self._phase = (name, waits_for_steps) if name is not None else None
            self._last_progress = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._phase, self._last_progress = previous, time.monotonic()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            if self._joined:
                self._exchange_beacons()
            reason = self._verdict(time.monotonic())
            if reason is not None and not self._stopped.is_set():
                self.runtime.give_up(reason)

    def _exchange_beacons(self) -> None:
        client = _client()
        now = time.monotonic()
        try:
            client.key_value_set(BEACON_KEY.format(self.runtime.index), f"{now:.3f}", allow_overwrite=True)
            for index, (last, _) in list(self._seen.items()):
                value = _try_get(client, BEACON_KEY.format(index))
                if value != last:
                    self._seen[index] = (value, now)
            self._unreachable_since = None
        except Exception:  # noqa: BLE001 - any failure of the key-value store: the coordinator is out of reach
            if self._unreachable_since is None:
                self._unreachable_since = now

    def _verdict(self, now: float) -> str | None:
        """The reason to give up now, or None."""
        with self._lock:
            phase, waited, warming = self._phase, now - self._last_progress, self._warming
        if phase is None:
            return None
        if not self._joined:
            return self._join_reason() if waited > self.timeout else None
        silent = self.silent_hosts()
        long_silent = [i for i in silent if now - self._silent_since(i) > self.timeout]
        stalled = phase[1] and not warming and waited > self.timeout
        if not (stalled or long_silent):
            return None
        what = f"no step completed for {waited:.0f} s" if stalled else "a host stayed silent"
        return (f"{self.runtime.host}: {self.describe_lost(silent)}: {what} during {self.phase_name} "
                f"(host_timeout_seconds={self.timeout:g})")

    def _silent_since(self, index: int) -> float:
        if index == 0 and self._unreachable_since is not None:
            return self._unreachable_since
        return self._seen[index][1]

    def _join_reason(self) -> str:
        runtime = self.runtime
        if runtime.index == 0:
            others = ", ".join(runtime.hosts[1:])
            return (f"{runtime.host}: not every host joined within {self.timeout:g} s (host_timeout_seconds): waited "
                    f"as the coordinator {runtime.coordinator} for {others}; a host that never started or cannot "
                    "reach this one")
        return (f"{runtime.host}: could not join the chief {runtime.chief} at {runtime.coordinator} within "
                f"{self.timeout:g} s (host_timeout_seconds): it never started, died or is unreachable")

    def silent_hosts(self, wait: bool = False) -> list[int]:
        """Indices of the hosts whose beacon stopped (the chief's when the coordinator cannot be reached).

        With ``wait``, keep watching for up to ``SILENT_BEACONS + 1`` intervals until some host falls silent (a
        host that just died has not missed enough beacons yet).
        """
        deadline = time.monotonic() + (SILENT_BEACONS + 1) * self.interval
        while True:
            now = time.monotonic()
            if self._unreachable_since is not None and now - self._unreachable_since >= SILENT_BEACONS * self.interval:
                return [0]
            quiet = SILENT_BEACONS * self.interval
            silent = [i for i, (_, since) in sorted(self._seen.items()) if now - since >= quiet]
            if silent or not wait or now >= deadline:
                return silent
            time.sleep(self.interval / 2)

    def describe_lost(self, silent: list[int]) -> str:
        hosts = self.runtime.hosts
        if silent == [0] and self.runtime.index != 0:
            return f"lost the chief {hosts[0]} (JAX's coordinator)"
        if silent:
            return f"lost {', '.join(hosts[i] for i in silent)} (stopped responding)"
        return "every host still answers, but one of them is stuck"


def _client():
    """JAX's distributed-runtime client of this process (its key-value store reaches the coordinator)."""
    from jax._src import distributed

    return distributed.global_state.client


def _try_get(client, key: str) -> str | None:
    try:
        return client.key_value_try_get(key)
    except Exception as exc:  # noqa: BLE001
        if "NOT_FOUND" in str(exc):
            return None
        raise
