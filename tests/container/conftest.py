"""Fixtures shared by every container test: the two image tags, the /opt/ml trees, one processed data set, and one
model trained on it by the training image (what the serving tests deploy).

Image tags come from ``VIDEO3DCNN_PROCESSING_IMAGE`` / ``VIDEO3DCNN_TRAINING_IMAGE`` (tests/run.sh builds the images
through the air-gapped path and sets them). When a variable is unset, the image is built here with
docker/build-images.sh: offline when the local base image and a filled wheelhouse exist, else from the default base.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import (
    REPO_ROOT,
    TRAINING_TIMEOUT_S,
    ContainerRun,
    give_back,
    processing_tree,
    run_container,
    training_tree,
)

PROCESSING_IMAGE_ENV = "VIDEO3DCNN_PROCESSING_IMAGE"
TRAINING_IMAGE_ENV = "VIDEO3DCNN_TRAINING_IMAGE"
OFFLINE_BASE = "local/bookworm-python:3.11"
BUILD_TIMEOUT_S = 1800
# Small enough for a 2-core CI machine; 3 groups per class with a 1/3 validation fraction gives every split clips.
SAMPLE_VIDEOS = {"groups": 3, "clips_per_group": 2, "num_frames": 16, "height": 32, "width": 32, "seed": 1}
PROCESS_ARGS = ["--frames", "8", "--size", "32x32", "--val-fraction", "0.34"]
# Enough epochs for the sample's motion classes (24 of 24 videos right in a trial run; 30 epochs took ~20 s).
SERVING_HYPERPARAMETERS = {"epochs": "40", "batch_size": "4", "seed": "0", "workers": "0"}
MODEL_FILES = ("model.keras", "classes.txt", "clip_spec.json")


def _offline_ready(client) -> bool:
    import docker

    try:
        client.images.get(OFFLINE_BASE)
    except docker.errors.ImageNotFound:
        return False
    return any((REPO_ROOT / "wheelhouse").glob("sagemaker_training-*.whl"))


def _image(client, kind: str, env_name: str) -> str:
    """The tag in ``env_name`` (which must exist), or a freshly built ``video3dcnn-<kind>:test``."""
    import docker

    tag = os.environ.get(env_name)
    if tag:
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            pytest.fail(f"{env_name}={tag} is not a local image: build it (docker/build-images.sh) or unset {env_name}")
        return tag
    tag = f"video3dcnn-{kind}:test"
    command = ["bash", "docker/build-images.sh", "--only", kind]
    if _offline_ready(client):
        command.append("--offline")
    env = {**os.environ, f"{kind.upper()}_IMAGE": tag}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, timeout=BUILD_TIMEOUT_S, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
    return tag


@pytest.fixture(scope="session")
def processing_image(docker_client) -> str:
    """Tag of the processing image (from VIDEO3DCNN_PROCESSING_IMAGE, else built)."""
    return _image(docker_client, "processing", PROCESSING_IMAGE_ENV)


@pytest.fixture(scope="session")
def training_image(docker_client) -> str:
    """Tag of the training image (from VIDEO3DCNN_TRAINING_IMAGE, else built)."""
    return _image(docker_client, "training", TRAINING_IMAGE_ENV)


@pytest.fixture
def opt_ml(tmp_path: Path, docker_client, processing_image: str) -> Iterator[Path]:
    """A directory for one job's /opt/ml tree; files the root containers wrote are handed back afterwards."""
    root = tmp_path / "opt_ml"
    root.mkdir()
    yield root
    give_back(docker_client, processing_image, root)


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic motion videos (4 classes, only the motion direction tells them apart) in class folders."""
    from video3dcnn.synthetic import write_motion_dataset

    root = tmp_path_factory.mktemp("videos")
    write_motion_dataset(root, **SAMPLE_VIDEOS)
    return root


@pytest.fixture(scope="session")
def processed(
    tmp_path_factory: pytest.TempPathFactory, docker_client, processing_image: str, sample_videos: Path
) -> Iterator[tuple[ContainerRun, Path]]:
    """The processing container's run on ``sample_videos`` and its /opt/ml root (shards in ``processed/``)."""
    root = tmp_path_factory.mktemp("processed")
    run = run_container(docker_client, processing_image, PROCESS_ARGS, processing_tree(root, sample_videos))
    yield run, root
    give_back(docker_client, processing_image, root)


@pytest.fixture(scope="session")
def bundled_sample_data(
    tmp_path_factory: pytest.TempPathFactory, docker_client, processing_image: str
) -> Iterator[Path]:
    """The bundled sample (local/videos, 120 videos) processed by the processing image with its defaults: the shards
    ``docker compose up preprocess`` makes (100 training and 20 validation clips of 15x32x32)."""
    root = tmp_path_factory.mktemp("bundled")
    run = run_container(docker_client, processing_image, [], processing_tree(root, REPO_ROOT / "local" / "videos"))
    if run.exit_code != 0:
        pytest.fail(f"the processing container failed on local/videos: {run.describe()}")
    yield root / "processed"
    give_back(docker_client, processing_image, root)


@pytest.fixture(scope="session")
def processed_data(processed: tuple[ContainerRun, Path]) -> Path:
    """The processed-data directory (shards, manifest-algo-1.json, classes.txt) that training tests mount."""
    run, root = processed
    if run.exit_code != 0:
        pytest.fail(f"the processing container failed, so there is no data to train on: {run.describe()}")
    return root / "processed"


@pytest.fixture(scope="session")
def trained_model(
    tmp_path_factory: pytest.TempPathFactory, docker_client, training_image: str, processing_image: str,
    processed_data: Path,
) -> Iterator[Path]:
    """The model directory a training job of the training image wrote for ``sample_videos``.

    Beside it, ``archive/model.tar.gz`` holds the same files packed as SageMaker packs /opt/ml/model, alone in its
    folder (SDK local mode extracts an archive into the folder it lies in and mounts that folder).
    """
    root = tmp_path_factory.mktemp("trained")
    mounts = training_tree(root, processed_data, SERVING_HYPERPARAMETERS)
    run = run_container(docker_client, training_image, None, mounts, timeout_s=TRAINING_TIMEOUT_S)
    if run.exit_code != 0:
        pytest.fail(f"the training container failed, so there is no model to serve: {run.describe()}")
    (root / "archive").mkdir()
    with tarfile.open(root / "archive/model.tar.gz", "w:gz") as archive:
        for name in MODEL_FILES:
            archive.add(root / "model" / name, arcname=name)
    yield root / "model"
    give_back(docker_client, processing_image, root)
