"""A real ``docker push`` of both images through build_and_push.sh to a real registry on 127.0.0.1, then a pull back.

The registry is Debian's ``docker-registry`` package (CNCF distribution), started here with a temporary config and
storage; no registry image is pulled. The Docker daemon treats 127.0.0.0/8 registries as insecure-allowed by default,
so no TLS or login is involved. The round trip checks what SageMaker relies on when it pulls an image: the manifest
the registry serves names our image's config (its ID) and every layer blob is there, and a pull gives the same image.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from localservers import LOCALHOST, free_port

pytestmark = pytest.mark.container

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY_BINARY = "docker-registry"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
PUSH_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:<port>`` of a registry serving from a temporary directory, for this module."""
    binary = shutil.which(REGISTRY_BINARY) or pytest.fail(
        f"{REGISTRY_BINARY} not found: apt-get install docker-registry (tests/run.sh does)"
    )
    root = tmp_path_factory.mktemp("registry")
    address = f"{LOCALHOST}:{free_port()}"
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        f"http:\n  addr: {address}\n",
        encoding="utf-8",
    )
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(address, process, root / "registry.log")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_until_up(address: str, process: subprocess.Popen, log: Path, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited {process.returncode}: {log.read_text(errors='replace')}")
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"docker-registry not answering on {address} after {timeout_s} s")


def _registry_get(address: str, path: str, accept: str | None = None, method: str = "GET"):
    request = urllib.request.Request(f"http://{address}/v2/{path}", method=method)
    if accept:
        request.add_header("Accept", accept)
    return urllib.request.urlopen(request, timeout=30)


def _manifest(address: str, repository: str, tag: str) -> tuple[str, dict]:
    """The digest and body of the manifest the registry serves for ``repository:tag``."""
    with _registry_get(address, f"{repository}/manifests/{tag}", MANIFEST_TYPES) as response:
        return response.headers["Docker-Content-Digest"], json.loads(response.read())


def _docker(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def test_both_images_round_trip_through_a_real_registry(
    registry: str, processing_image: str, training_image: str, docker_client
) -> None:
    tag = f"test-{secrets.token_hex(3)}"
    command = [
        "bash", str(REPO_ROOT / "build_and_push.sh"), "all", "--registry", registry, "--tag", tag,
        "--processing-image", processing_image, "--training-image", training_image,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=PUSH_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr
    uris = result.stdout.splitlines()
    assert uris == [f"{registry}/sagemaker-video3dcnn-{kind}:{tag}" for kind in ("processing", "training")]
    pushed_tags = uris + [uri.rsplit(":", 1)[0] + ":latest" for uri in uris]
    try:
        for uri, source in zip(uris, (processing_image, training_image), strict=True):
            _check_round_trip(registry, uri, source)
    finally:
        for name in pushed_tags:
            subprocess.run(["docker", "rmi", name], capture_output=True, check=False, timeout=60)


def _check_round_trip(registry: str, uri: str, source: str) -> None:
    repository, tag = uri[len(registry) + 1 :].rsplit(":", 1)
    source_id = _docker("image", "inspect", "--format", "{{.Id}}", source).strip()
    digest, manifest = _manifest(registry, repository, tag)
    assert manifest["config"]["digest"] == source_id  # the registry serves exactly our image
    assert _manifest(registry, repository, "latest")[0] == digest
    for layer in manifest["layers"]:
        with _registry_get(registry, f"{repository}/blobs/{layer['digest']}", method="HEAD") as response:
            assert int(response.headers["Content-Length"]) == layer["size"]
    _docker("rmi", uri)
    _docker("pull", uri, timeout=PUSH_TIMEOUT_S)
    pulled = json.loads(_docker("image", "inspect", uri))[0]
    assert pulled["Id"] == source_id
    assert f"{registry}/{repository}@{digest}" in pulled["RepoDigests"]
    assert (pulled["Os"], pulled["Architecture"]) == ("linux", "amd64")
