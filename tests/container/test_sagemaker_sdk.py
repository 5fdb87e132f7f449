"""Both images under SageMaker Python SDK v2 local mode: the /opt/ml contract as SageMaker itself lays it out.

``Estimator(image_uri=..., instance_type="local")`` trains on a ``file://`` channel of shards and must return the
model in ``model.tar.gz``; ``Processor(image_uri=..., instance_type="local")`` turns videos in S3 into shards in S3,
with the S3 side served by moto on 127.0.0.1. No AWS call: telemetry is opted out, credentials are dummies, every AWS
endpoint points at moto, and HTTPS goes to a dead proxy, so a stray call fails instead of leaving the machine.

SDK v2 runs ``docker compose`` only when its version output contains "v2", else the ``docker-compose`` executable.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from localservers import ACCOUNT, LOCALHOST, REGION, MotoServer, moto, moto_module  # noqa: F401 - fixtures

from video3dcnn.cli import main as video3dcnn

pytestmark = pytest.mark.container

ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"  # never assumed in local mode
BUCKET = "video3dcnn-sdk-test"
CLIP_ARGS = ["--frames", "8", "--size", "32x32"]
CLASSES = ["MoveDown", "MoveLeft", "MoveRight", "MoveUp"]
COMPOSE_WORKING_DIR = "com.docker.compose.project.working_dir"
LOCAL_MODE_NETWORK = "sagemaker-local"
TELEMETRY_OPT_OUT = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"


@pytest.fixture
def sdk_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoServer:
    """moto for every AWS endpoint, dummy credentials, telemetry off, no way out to the internet."""
    sagemaker_config = tmp_path / "sagemaker-config.yaml"
    sagemaker_config.write_text(TELEMETRY_OPT_OUT, encoding="utf-8")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(sagemaker_config))
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(sagemaker_config))
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    monkeypatch.setenv("HTTPS_PROXY", f"http://{LOCALHOST}:9")
    monkeypatch.setenv("NO_PROXY", f"{LOCALHOST},localhost")
    return moto


@pytest.fixture
def local_session(sdk_env: MotoServer, tmp_path: Path, docker_client) -> Iterator[tuple]:
    """A LocalSession whose only AWS traffic (S3) goes to moto, and every ``service:Operation`` called through it.

    Local mode leaves its stopped containers behind; they are removed afterwards (found by the compose working
    directory under this test's container root), and so is its network when nothing else uses it.
    """
    import boto3
    from sagemaker.local import LocalSession

    container_root = tmp_path / "sm"
    container_root.mkdir()
    boto_session = boto3.Session(region_name=REGION)
    calls: list[str] = []
    boto_session.events.register(
        "before-call", lambda model, **_: calls.append(f"{model.service_model.service_name}:{model.name}")
    )
    session = LocalSession(boto_session=boto_session, s3_endpoint_url=sdk_env.endpoint, default_bucket=BUCKET)
    session.config = {"local": {"local_code": True, "container_root": str(container_root)}}
    yield session, calls
    _remove_local_mode_leftovers(docker_client, container_root)


def _remove_local_mode_leftovers(client, container_root: Path) -> None:
    import docker

    for container in client.containers.list(all=True, filters={"label": COMPOSE_WORKING_DIR}):
        if container.labels[COMPOSE_WORKING_DIR].startswith(f"{container_root}/"):
            container.remove(force=True)
    try:
        client.networks.get(LOCAL_MODE_NETWORK).remove()
    except docker.errors.APIError:  # still in use, or already gone
        pass


def _videos(directory: Path) -> Path:
    assert video3dcnn(["sample", str(directory), "--groups", "2", "--clips-per-group", "2",
                       "--frames", "16", "--size", "32x32"]) == 0  # fmt: skip
    return directory


def test_estimator_local_mode_returns_the_model_in_model_tar_gz(
    sdk_env: MotoServer, local_session: tuple, training_image: str, processed_data: Path, tmp_path: Path
) -> None:
    from sagemaker.estimator import Estimator

    session, calls = local_session
    estimator = Estimator(
        image_uri=training_image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        output_path=f"file://{tmp_path / 'artifacts'}",
        hyperparameters={"epochs": 1, "batch_size": 4, "workers": 0},
        sagemaker_session=session,
    )
    estimator.fit({"training": f"file://{processed_data}"}, wait=True, logs=True)  # the processing image's shards
    model_tar = Path(estimator.model_data.removeprefix("file://"))
    assert model_tar.name == "model.tar.gz"
    with tarfile.open(model_tar) as archive:
        names = set(archive.getnames())
        classes = archive.extractfile("classes.txt").read().decode().split()
    assert {"model.keras", "classes.txt", "clip_spec.json"} <= names
    assert classes == CLASSES
    with tarfile.open(model_tar.with_name("output.tar.gz")) as archive:
        outputs = set(archive.getnames())
    assert "success" in outputs and "failure" not in outputs
    assert any(name.endswith("metrics.json") for name in outputs)
    assert calls == [] and sdk_env.recording() == []  # no AWS call at all


def test_processor_local_mode_turns_s3_videos_into_s3_shards(
    sdk_env: MotoServer, local_session: tuple, processing_image: str, tmp_path: Path
) -> None:
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor

    session, calls = local_session
    s3 = session.boto_session.client("s3", endpoint_url=sdk_env.endpoint)
    s3.create_bucket(Bucket=BUCKET)
    videos = _videos(tmp_path / "videos")
    for path in sorted(videos.rglob("*.mp4")):
        s3.upload_file(str(path), BUCKET, f"videos/{path.relative_to(videos)}")
    processor = Processor(
        role=ROLE,
        image_uri=processing_image,
        instance_count=1,
        instance_type="local",
        entrypoint=["video3dcnn", "process"],  # SDK v2 needs it with arguments (KeyError 'entrypoint' otherwise)
        sagemaker_session=session,
    )
    processor.run(
        inputs=[ProcessingInput(source=f"s3://{BUCKET}/videos", destination="/opt/ml/processing/input_data")],
        outputs=[ProcessingOutput(source="/opt/ml/processing/processed_data", destination=f"s3://{BUCKET}/processed")],
        arguments=CLIP_ARGS,
        wait=True,
        logs=True,
    )
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="processed/")["Contents"]]
    [manifest_key] = [key for key in keys if key.startswith("processed/manifest-") and key.endswith(".json")]
    host = manifest_key.removeprefix("processed/manifest-").removesuffix(".json")
    assert host.startswith("algo-1")  # the host name SageMaker's resourceconfig.json gave the container
    assert any(key.startswith(f"processed/{host}-") and key.endswith(".npz") for key in keys)
    classes = s3.get_object(Bucket=BUCKET, Key="processed/classes.txt")["Body"].read().decode().split()
    assert classes == CLASSES
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    assert json.dumps(manifest).count('"frames": 8') >= 1
    assert {call.split(":")[0] for call in calls} == {"s3"}  # no STS (telemetry), no SageMaker API
    assert sdk_env.signed_scopes() == {(REGION, "s3")}
