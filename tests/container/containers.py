"""Helpers for the container smoke tests: fake /opt/ml trees and one-shot container runs through the docker SDK.

A container runs like a SageMaker job without network access: ``network_mode="none"``, host name ``algo-1`` (the name
in resourceconfig.json), which resolves through an /etc/hosts entry since there is no DNS. A serving container
(``serving_container``) publishes its port 8080 on 127.0.0.1 instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from video3dcnn import contract

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "algo-1"
OPT_ML = Path("/opt/ml")
PROCESSING_TIMEOUT_S = 120
TRAINING_TIMEOUT_S = 300
TRAINING_IMAGE_MAX_BYTES = 2.4e9  # 2351 MB measured: TensorFlow 1.0 GB (for the SavedModel export), JAX 0.39 GB
SYNTHETIC_CLASSES = ["MoveDown", "MoveLeft", "MoveRight", "MoveUp"]


@dataclass(frozen=True)
class ContainerRun:
    """How a container ended: its exit code and its whole log (stdout and stderr)."""

    exit_code: int
    logs: str

    def describe(self) -> str:
        """The exit code and the last lines of the log, for assertion messages."""
        tail = "\n".join(self.logs.splitlines()[-60:])
        return f"exit code {self.exit_code}; log tail:\n{tail}"


def run_container(
    client,
    image: str,
    command: list[str] | None = None,
    volumes: dict[Path, str] | None = None,
    entrypoint: list[str] | None = None,
    timeout_s: float = PROCESSING_TIMEOUT_S,
    extra_hosts: dict[str, str] | None = None,
    environment: dict[str, str] | None = None,
) -> ContainerRun:
    """Run ``image`` to completion without network, print its log, and remove it.

    Args:
        client: a ``docker.DockerClient``.
        command: the container command (None: the image's CMD).
        volumes: host path -> container path; a container path ending in ``:ro`` is mounted read-only.
        entrypoint: replaces the image's ENTRYPOINT when given.
        timeout_s: the container is killed, and the test fails, after this many seconds.
        extra_hosts: more /etc/hosts entries (name -> address) besides this container's own name.
        environment: variables added to the image's (``docker run -e``).
    """
    binds = {}
    for host_path, target in (volumes or {}).items():
        path, _, mode = target.partition(":")
        binds[str(Path(host_path).resolve())] = {"bind": path, "mode": mode or "rw"}
    container = client.containers.run(
        image, command, entrypoint=entrypoint, volumes=binds, detach=True, network_mode="none",
        hostname=HOST, extra_hosts={HOST: "127.0.0.1", **(extra_hosts or {})}, environment=environment,
    )  # fmt: skip
    try:
        try:
            exit_code = container.wait(timeout=timeout_s)["StatusCode"]
        except Exception as exc:  # noqa: BLE001 - requests' timeout types vary; any failure to wait ends the test
            container.kill()
            raise AssertionError(f"{image} did not finish within {timeout_s} s ({exc}):\n{_logs(container)}") from None
        run = ContainerRun(exit_code, _logs(container))
        print(f"--- {image} {command or ''} exited {exit_code} ---\n{run.logs}")
        return run
    finally:
        container.remove(force=True)


PACKAGING_TOOLS = ("pip", "setuptools", "wheel", "pkg_resources")
NO_BUILD_LEFTOVERS = (
    "import glob, importlib.util, os, shutil, subprocess, sys; "
    "assert shutil.which('gcc') is None, 'gcc in the image'; "
    "assert not os.path.exists('/wheels'), 'wheels in the image'; "
    # pip, setuptools and wheel: not on PATH, not in the venv, not in the base image's Python, no wheels to reinstall
    "found = [name for name in ('pip', 'pip3', 'wheel', 'easy_install') if shutil.which(name)]; "
    "assert not found, found; "
    f"found = [n for n in {PACKAGING_TOOLS} if importlib.util.find_spec(n)]; assert not found, found; "
    "base = os.path.join(sys.base_prefix, 'bin', 'python3'); "
    f'probe = "import importlib.util as u; print([n for n in {PACKAGING_TOOLS} if u.find_spec(n)])"; '
    "found = subprocess.run([base, '-c', probe], capture_output=True, text=True, check=True).stdout.strip(); "
    "assert found == '[]', (base, found); "
    "found = [path for pattern in ('/usr/share/python-wheels/*', '/usr/lib/python3*/ensurepip/_bundled/*', "
    "'/usr/local/lib/python3*/ensurepip/_bundled/*') for path in glob.glob(pattern)]; assert not found, found; "
)


def check_image(client, image: str, max_bytes: int, probe: str) -> dict:
    """Assert what both images promise and return the image's config.

    The size is at most ``max_bytes``, the OCI labels source, version and revision are set, no compiler or wheel
    reached the shipped stage, and the Python statements ``probe`` run without error inside the image.
    """
    attrs = client.images.get(image).attrs
    assert attrs["Size"] <= max_bytes, f"{image} is {attrs['Size'] / 1e6:.0f} MB"
    labels = attrs["Config"]["Labels"] or {}
    for key in ("source", "version", "revision"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key} missing"
    run = run_container(client, image, [NO_BUILD_LEFTOVERS + probe], entrypoint=["python", "-c"])
    assert run.exit_code == 0, run.describe()
    return attrs["Config"]


def _logs(container) -> str:
    return container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")


def write_json(path: Path, data: dict) -> Path:
    """Write ``data`` as JSON, creating the parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def resource_config(host: str = HOST, hosts: list[str] | None = None) -> dict:
    """A resourceconfig.json: a single instance unless ``hosts`` lists the job's instances."""
    return {"current_host": host, "hosts": hosts or [host]}


def processing_tree(root: Path, videos: Path) -> dict[Path, str]:
    """Lay out a Processing job's /opt/ml under ``root`` (config, output dirs) and return the mounts.

    The seed processingjobconfig.json of docker-compose is reused, so the tests read the same file users get.
    """
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "docker/local/processing/config" / contract.PROCESSING_JOB_CONFIG, config)
    write_json(config / contract.RESOURCE_CONFIG, resource_config())
    for name in ("processed", "output"):
        (root / name).mkdir(exist_ok=True)
    return {
        videos: f"{OPT_ML / contract.PROCESSING_INPUT}:ro",
        config: f"{OPT_ML / contract.PROCESSING_CONFIG_DIR}:ro",
        root / "processed": str(OPT_ML / contract.PROCESSING_OUTPUT),
        root / "output": str(OPT_ML / "output"),
    }


def training_tree(
    root: Path, data: Path, hyperparameters: dict[str, str], hosts: list[str] | None = None
) -> dict[Path, str]:
    """Lay out a Training job's /opt/ml under ``root`` and return the mounts.

    ``hyperparameters`` are written as SageMaker stores them: every value a string (JSON-encoded). ``hosts``: the
    job's instances, this container being the first (default: it alone).
    """
    config = root / "input/config"
    write_json(config / contract.HYPERPARAMETERS_FILE, hyperparameters)
    write_json(config / contract.INPUT_DATA_CONFIG, {contract.TRAINING_CHANNEL: {"TrainingInputMode": "File"}})
    write_json(config / contract.RESOURCE_CONFIG, resource_config(HOST, hosts))
    for name in ("model", "output", "checkpoints"):
        (root / name).mkdir(exist_ok=True)
    return {
        config: str(OPT_ML / contract.INPUT_CONFIG_DIR),
        data: f"{OPT_ML / contract.INPUT_DATA_DIR / contract.TRAINING_CHANNEL}:ro",
        root / "model": str(OPT_ML / contract.MODEL_DIR),
        root / "output": str(OPT_ML / "output"),
        root / "checkpoints": str(OPT_ML / contract.CHECKPOINT_DIR),
    }


COMPOSE_VERSIONS = ("v1", "v2")
COMPOSE_V2_CONFIG_ENV = "VIDEO3DCNN_COMPOSE_V2_CONFIG"  # a DOCKER_CONFIG holding cli-plugins/docker-compose


@dataclass(frozen=True)
class Compose:
    """One Compose version as a user calls it: the words that replace ``docker compose`` and extra environment."""

    version: str
    argv: tuple[str, ...]
    env: dict[str, str]

    def shell(self, command: str) -> str:
        """``command`` as written for Compose v2 (``docker compose ...``), spelt for this version."""
        return command.replace("docker compose", " ".join(self.argv))


def compose_cli(version: str) -> Compose:
    """Compose v1 (Debian's ``docker-compose`` 1.29) or v2 (the ``docker compose`` CLI plugin).

    v2 comes from the DOCKER_CONFIG folder named by ``$VIDEO3DCNN_COMPOSE_V2_CONFIG`` (tests/run.sh installs it there
    with docker/install-compose-v2.sh), else from the docker CLI's own plugins. Missing either is a test failure,
    not a skip: the README promises both.
    """
    if version == "v1":
        legacy = shutil.which("docker-compose")
        if legacy is None or b"version 1." not in subprocess.run([legacy, "version"], capture_output=True).stdout:
            raise AssertionError("Compose v1 is not installed: apt-get install docker-compose (Debian's 1.29)")
        return Compose("v1", (legacy,), {})
    docker = shutil.which("docker") or "docker"
    env = {"DOCKER_CONFIG": os.environ[COMPOSE_V2_CONFIG_ENV]} if os.environ.get(COMPOSE_V2_CONFIG_ENV) else {}
    if subprocess.run([docker, "compose", "version"], env={**os.environ, **env}, capture_output=True).returncode:
        raise AssertionError(f"Compose v2 is not installed: export {COMPOSE_V2_CONFIG_ENV}=$(docker/install-compose-v2.sh)")
    return Compose("v2", (docker, "compose"), env)


def give_back(client, image: str, path: Path) -> None:
    """Hand files the root containers wrote under ``path`` back to this (non-root) user, so tmp dirs can be removed."""
    if os.geteuid() == 0 or not path.exists():
        return
    owner = f"{os.getuid()}:{os.getgid()}"
    run_container(client, image, ["-R", owner, "/work"], volumes={path: "/work"}, entrypoint=["chown"])


@dataclass
class Server:
    """A running ``serve`` container and where its port is published on this machine."""

    container: object
    url: str

    def logs(self) -> str:
        return _logs(self.container)


def wait_until_healthy(url: str, timeout_s: float = 180) -> None:
    """Poll ``GET <url>/ping`` until it answers 200, as SageMaker does before it sends requests."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # not listening yet, 503 while the model loads, or slow while Keras is imported
            pass
        time.sleep(1)
    raise AssertionError(f"{url}/ping did not answer 200 within {timeout_s:.0f} s")


@contextmanager
def serving_container(
    client, image: str, model_dir: Path, environment: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run ``docker run <image> serve`` with ``model_dir`` at /opt/ml/model, its port 8080 published on 127.0.0.1.

    The container is removed afterwards and its log printed (pytest shows it for a failed test).
    """
    from localservers import LOCALHOST, free_port

    port = free_port()
    container = client.containers.run(
        image, ["serve"], detach=True, environment=environment or {}, ports={"8080/tcp": (LOCALHOST, port)},
        volumes={str(Path(model_dir).resolve()): {"bind": str(OPT_ML / contract.MODEL_DIR), "mode": "ro"}},
    )  # fmt: skip
    server = Server(container, f"http://{LOCALHOST}:{port}")
    try:
        yield server
    finally:
        print(f"--- {image} serve ---\n{server.logs()}")
        container.remove(force=True)
