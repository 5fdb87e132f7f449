"""Both images under SageMaker Python SDK v2 local mode: the /opt/ml contract as SageMaker itself lays it out.

``Estimator(image_uri=..., instance_type="local")`` trains on a ``file://`` channel of shards and must return the
model in ``model.tar.gz``; ``Processor(image_uri=..., instance_type="local")`` turns videos in S3 into shards in S3,
with the S3 side served by moto on 127.0.0.1. ``Model(image_uri=<training image>, model_data="file://...")`` serves a
model the training image trained: ``.deploy`` answers a ``Predictor`` sent a video file, and ``.transformer`` writes
one ``.out`` per video that agrees with ``video3dcnn predict`` run in the same image. No AWS call: telemetry is opted
out, credentials are dummies, every AWS endpoint points at moto, and HTTPS goes to a dead proxy, so a stray call fails
instead of leaving the machine.

SDK v2 runs ``docker compose`` only when its version output contains "v2", else the ``docker-compose`` executable.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import SYNTHETIC_CLASSES, run_container
from localservers import ACCOUNT, LOCALHOST, REGION, MotoServer, free_port, moto, moto_module  # noqa: F401 - fixtures

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


def _job_containers(client, container_root: Path) -> list:
    """The containers local mode started for jobs under ``container_root`` (it leaves them behind, stopped)."""
    return [
        container
        for container in client.containers.list(all=True, filters={"label": COMPOSE_WORKING_DIR})
        if container.labels[COMPOSE_WORKING_DIR].startswith(f"{container_root}/")
    ]


def _remove_local_mode_leftovers(client, container_root: Path) -> None:
    import docker

    for container in _job_containers(client, container_root):
        container.remove(force=True)
    try:
        client.networks.get(LOCAL_MODE_NETWORK).remove()
    except docker.errors.APIError:  # still in use, or already gone
        pass


def _estimator(session, image: str, instance_count: int, hyperparameters: dict, tmp_path: Path):
    """A generic SDK v2 Estimator of ``image`` in local mode, its artefacts under ``tmp_path/artifacts``."""
    from sagemaker.estimator import Estimator

    return Estimator(image_uri=image, role=ROLE, instance_count=instance_count, instance_type="local",
                     output_path=f"file://{tmp_path / 'artifacts'}", hyperparameters=hyperparameters,
                     sagemaker_session=session)  # fmt: skip


def _videos(directory: Path) -> Path:
    assert video3dcnn(["sample", str(directory), "--groups", "2", "--clips-per-group", "2",
                       "--frames", "16", "--size", "32x32"]) == 0  # fmt: skip
    return directory


def test_estimator_local_mode_returns_the_model_in_model_tar_gz(
    sdk_env: MotoServer, local_session: tuple, training_image: str, processed_data: Path, tmp_path: Path
) -> None:
    session, calls = local_session
    estimator = _estimator(session, training_image, 1, {"epochs": 1, "batch_size": 4, "workers": 0}, tmp_path)
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


def _serving_model(session, training_image: str, trained_model: Path, env: dict[str, str] | None = None):
    """A ``sagemaker.model.Model`` of the training image and its model.tar.gz, served on a free port of this machine."""
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor

    # Local mode publishes the container's 8080 on local.serving_port; 8080 itself may be taken on a shared machine.
    session.config = {"local": {**session.config["local"], "serving_port": free_port()}}
    archive = trained_model.parent / "archive/model.tar.gz"
    return Model(image_uri=training_image, model_data=f"file://{archive}", role=ROLE, env=env or {},
                 sagemaker_session=session, predictor_cls=Predictor)  # fmt: skip


def _sample_files(sample_videos: Path, per_class: int) -> dict[str, Path]:
    """``per_class`` videos of each class: file name -> path; names start with the class."""
    return {
        f"{name}-{path.name}": path
        for name in SYNTHETIC_CLASSES
        for path in sorted((sample_videos / name).glob("*.mp4"))[:per_class]
    }


def test_model_deployed_in_local_mode_predicts_the_class_of_a_video(
    sdk_env: MotoServer, local_session: tuple, training_image: str, trained_model: Path, sample_videos: Path
) -> None:
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import IdentitySerializer

    session, calls = local_session
    model = _serving_model(session, training_image, trained_model)
    predictor = model.deploy(initial_instance_count=1, instance_type="local",
                             serializer=IdentitySerializer("video/mp4"), deserializer=JSONDeserializer())  # fmt: skip
    try:
        for name, path in _sample_files(sample_videos, 1).items():
            answer = predictor.predict(path.read_bytes())
            assert answer["predicted"] == name.split("-")[0], answer
            assert answer["classes"] == SYNTHETIC_CLASSES
    finally:
        predictor.delete_endpoint()
    assert calls == [] and sdk_env.recording() == []  # no AWS call at all


def test_transformer_in_local_mode_writes_one_out_per_video_agreeing_with_predict(
    sdk_env: MotoServer, local_session: tuple, training_image: str, trained_model: Path, sample_videos: Path,
    tmp_path: Path, docker_client,
) -> None:
    session, calls = local_session
    videos = tmp_path / "videos"  # local mode sends the files directly in the folder, one request each
    videos.mkdir()
    for name, path in _sample_files(sample_videos, 2).items():
        shutil.copy(path, videos / name)
    model = _serving_model(session, training_image, trained_model, env={"VIDEO3DCNN_TOP_K": "4"})
    # strategy must be given: local mode takes the container's "SINGLE_RECORD" (the developer guide's spelling) for an
    # API value and refuses it.
    transformer = model.transformer(
        instance_count=1, instance_type="local", strategy="SingleRecord", assemble_with="Line", accept="text/csv",
        output_path=f"file://{tmp_path / 'out'}",
    )  # fmt: skip
    transformer.transform(f"file://{videos}", content_type="video/mp4", split_type=None, wait=True, logs=False)
    outputs = {path.name for path in (tmp_path / "out").iterdir()}
    assert outputs == {f"{path.name}.out" for path in videos.iterdir()}

    (tmp_path / "predict").mkdir()
    run = run_container(
        docker_client, training_image,
        ["predict", "--model-dir", "/opt/ml/model", "/videos", "--output", "/predict/predictions.csv", "--top-k", "4"],
        volumes={trained_model: "/opt/ml/model:ro", videos: "/videos:ro", tmp_path / "predict": "/predict"},
        entrypoint=["video3dcnn"],
    )  # fmt: skip
    assert run.exit_code == 0, run.describe()
    with open(tmp_path / "predict/predictions.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    assert len(rows) == len(outputs)
    for row in rows:
        name = Path(row[0]).name
        [out] = list(csv.reader((tmp_path / "out" / f"{name}.out").read_text().splitlines()))
        assert out[0] == row[1] == name.split("-")[0]  # the same class, and the right one
        assert out[2:-1:2] == row[3:-2:2]  # the same ranking
        assert [float(p) for p in out[1:-1:2]] == pytest.approx([float(p) for p in row[2:-2:2]], abs=2e-6)
        assert out[-1] == row[-2] == "1"  # clips
    assert calls == [] and sdk_env.recording() == []


SAMPLE_HYPERPARAMETERS = {"epochs": 12, "batch_size": 16, "learning_rate": 0.001, "seed": 0}  # docker/local's


@pytest.mark.slow
def test_estimator_local_mode_trains_one_model_on_two_hosts(
    sdk_env: MotoServer, local_session: tuple, training_image: str, bundled_sample_data: Path, tmp_path: Path,
    docker_client,
) -> None:
    """instance_count=2: two containers on the sagemaker-local network train one model, each on its half."""
    session, calls = local_session
    estimator = _estimator(session, training_image, 2, SAMPLE_HYPERPARAMETERS, tmp_path)
    started = time.monotonic()
    estimator.fit({"training": f"file://{bundled_sample_data}"}, wait=True, logs=True)
    print(f"two-host local-mode job: {time.monotonic() - started:.0f} s")
    containers = sorted(_job_containers(docker_client, tmp_path / "sm"), key=lambda c: c.name)
    logs = {c.name: c.logs().decode("utf-8", "replace") for c in containers}
    assert [c.attrs["State"]["ExitCode"] for c in containers] == [0, 0], {n: log[-3000:] for n, log in logs.items()}
    parts = sorted(_read_part(log) for log in logs.values())  # (first, last, total) per host
    assert parts[0][0] == 0 and parts[1][0] == parts[0][1] + 1 and parts[1][1] + 1 == parts[1][2] == 100
    model_tar = Path(estimator.model_data.removeprefix("file://"))
    with tarfile.open(model_tar) as archive:
        assert {"model.keras", "classes.txt", "clip_spec.json"} <= set(archive.getnames())
    with tarfile.open(model_tar.with_name("output.tar.gz")) as archive:
        [metrics_name] = [name for name in archive.getnames() if name.endswith("metrics.json")]  # the chief's only
        metrics = json.loads(archive.extractfile(metrics_name).read())
        assert "failure" not in {Path(name).name for name in archive.getnames()}
    assert metrics["validation"]["count"] == 20 and metrics["validation"]["accuracy"] == 1.0, metrics["validation"]
    assert calls == [] and sdk_env.recording() == []


def _read_part(log: str) -> tuple[int, int, int]:
    found = re.search(r"host \d of 2 reads train clips (\d+)-(\d+) of (\d+)", log)
    assert found, log[-3000:]
    return int(found[1]), int(found[2]), int(found[3])
