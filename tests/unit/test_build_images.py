"""docker/build-images.sh with a stub ``docker`` that records its arguments: what ``--prune`` removes, and when."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

STUB_DOCKER = """#!{python}
import json, os, sys
with open(os.environ["DOCKER_STUB_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["image", "inspect"]:
    print("123000000")
"""


def _build_images(tmp_path: Path, *args: str) -> list[list[str]]:
    """Run the script against the stub; return the docker calls other than the size queries."""
    stub = tmp_path / "docker"
    stub.write_text(STUB_DOCKER.format(python=sys.executable), encoding="utf-8")
    stub.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    env = {"PATH": "/usr/bin:/bin", "DOCKER": str(stub), "DOCKER_STUB_LOG": str(log)}
    result = subprocess.run(
        ["bash", "docker/build-images.sh", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return [call for call in calls if call[:2] != ["image", "inspect"]]


def _summary(calls: list[list[str]]) -> list[str]:
    """Each call as 'build Dockerfile.X' or its first two words."""
    return [f"build {call[call.index('--file') + 1]}" if call[0] == "build" else " ".join(call[:2]) for call in calls]


def test_prune_clears_each_images_leftovers_before_the_next_build(tmp_path: Path) -> None:
    """A small disk holds one image's builder stage at a time: the CI machine that ran out of space did so while the
    training image was built on top of the processing image's build cache."""
    assert _summary(_build_images(tmp_path, "--prune")) == [
        "build Dockerfile.processing",
        "image prune",
        "builder prune",
        "build Dockerfile.training",
        "image prune",
        "builder prune",
    ]


def test_prune_removes_only_builder_stages_and_dangling_cache(tmp_path: Path) -> None:
    calls = _build_images(tmp_path, "--prune", "--only", "training")
    image_prune, builder_prune = calls[1:]
    assert image_prune == ["image", "prune", "--force", "--filter", "label=video3dcnn.stage=builder"]
    assert builder_prune == ["builder", "prune", "--force"]  # not --all: cache an image uses stays


@pytest.mark.parametrize("args", [(), ("--only", "processing")])
def test_without_prune_nothing_is_removed(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert all(call[0] == "build" for call in _build_images(tmp_path, *args))
