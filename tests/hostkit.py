"""Test helpers for multi-host training without containers: one ``video3dcnn train`` process per host.

Each host gets its own fake /opt/ml tree (``SAGEMAKER_BASE_DIR``) whose resourceconfig.json names the host and its
peers, like SageMaker's, and a training channel that links to one shared data directory. The hosts find the chief's
coordinator at 127.0.0.1 on a free port (``VIDEO3DCNN_COORDINATOR``), since the test hosts' names do not resolve.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOSTS = ("algo-1", "algo-2")
HOST_TIMEOUT_S = 300.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def opt_ml(root: Path, host: str, hosts: Sequence[str], hyperparameters: Mapping[str, str], data: Path) -> Path:
    """Lay out one host's /opt/ml under ``root`` (config files, the training channel, output dirs) and return it."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters)))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {"TrainingInputMode": "File"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": list(hosts)}))
    (root / "input" / "data").mkdir()
    (root / "input" / "data" / "training").symlink_to(data)
    return root


@dataclass
class HostRun:
    """A host's ``video3dcnn train`` process, its /opt/ml root and its log file."""

    host: str
    root: Path
    process: subprocess.Popen
    log_path: Path
    started: float

    def wait(self, timeout: float) -> int:
        """The exit code; kills the process (and fails) when it runs past ``timeout`` seconds."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.host} still running after {timeout} s:\n{self.log[-4000:]}") from None

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def failure(self) -> str | None:
        path = self.root / "output" / "failure"
        return path.read_text(encoding="utf-8") if path.exists() else None


def start_host(root: Path, host: str, coordinator: str, env: Mapping[str, str] | None = None) -> HostRun:
    """Start ``video3dcnn train`` as ``host`` on the /opt/ml tree ``root`` (JAX backend, one CPU device)."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("SM_", "SAGEMAKER_", "XLA_"))}
    environ.update(SAGEMAKER_BASE_DIR=str(root), KERAS_BACKEND="jax", VIDEO3DCNN_COORDINATOR=coordinator,
                   PYTHONUNBUFFERED="1", **(env or {}))
    log_path = root / "train.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "video3dcnn", "train"], stdout=log, stderr=subprocess.STDOUT,
                                   env=environ, cwd=root)
    return HostRun(host, root, process, log_path, time.monotonic())


def start_job(tmp: Path, data: Path, hyperparameters: Mapping[str, str], hosts: Sequence[str] = HOSTS,
              start: Sequence[str] | None = None, coordinator: str | None = None) -> dict[str, HostRun]:
    """Start the hosts in ``start`` (default: all) of a job of ``hosts``, each with its own /opt/ml under ``tmp``."""
    coordinator = coordinator or f"127.0.0.1:{free_port()}"
    runs = {}
    for host in start or hosts:
        root = tmp / host
        if not (root / "input").exists():
            opt_ml(root, host, hosts, hyperparameters, data)
        runs[host] = start_host(root, host, coordinator)
    return runs
