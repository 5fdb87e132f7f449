"""Shared pytest set-up: opt-in flags for slow and container tests, hermetic environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR))  # tests/videos.py and friends import as top-level helpers
# Keras picks its backend when first imported (while test modules are collected): the training image's, unless the
# caller chose one (KERAS_BACKEND=tensorflow tests/run.sh tests the model code on TensorFlow).
os.environ.setdefault("KERAS_BACKEND", "jax")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")
    parser.addoption(
        "--run-container",
        action="store_true",
        help="also run tests marked container; they FAIL (not skip) when the Docker daemon is unreachable",
    )


def _enabled(config: pytest.Config, flag: str, env: str) -> bool:
    return bool(config.getoption(flag)) or os.environ.get(env, "") in ("1", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = _enabled(config, "--run-slow", "VIDEO3DCNN_RUN_SLOW")
    run_container = _enabled(config, "--run-container", "VIDEO3DCNN_RUN_CONTAINER")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --run-slow"))
        if "container" in item.keywords and not run_container:
            item.add_marker(pytest.mark.skip(reason="container: run with --run-container"))


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach AWS or inherit a SageMaker environment from the machine."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "SM_", "SAGEMAKER_")) or name in ("TF_CONFIG", "VIDEO3DCNN_CHECKPOINT_DIR", "VIDEO3DCNN_COORDINATOR"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("KERAS_BACKEND", os.environ["KERAS_BACKEND"])
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def docker_client():
    """A docker SDK client. Container tests fail, never skip, when they were asked for and the daemon is down."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the daemon
        pytest.fail(f"Docker daemon unreachable ({exc}); container tests were requested with --run-container")
    return client
