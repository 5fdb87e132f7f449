"""``video3dcnn launch``: the requests sent to SageMaker, checked against a moto server on 127.0.0.1.

Each CLI test runs ``cli.main`` in-process against moto in server mode, then reads the job back with describe_* and
the raw request body from moto's recorder (moto does not echo Environment, ProcessingResources or
MetricDefinitions), asserting every field.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

import boto3  # noqa: E402
from localservers import MotoServer, moto, moto_module  # noqa: E402,F401 - fixtures

from video3dcnn import launch  # noqa: E402
from video3dcnn.cli import main  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
PROCESSING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-video3dcnn-processing:abc1234"
TRAINING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-video3dcnn-training:abc1234"
BUCKET = "video3dcnn-test"


@pytest.fixture
def aws(moto: MotoServer) -> MotoServer:
    """moto with the test bucket."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return moto


def _put_videos(*keys: str) -> None:
    s3 = boto3.client("s3")
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"not really a video")


ARGV = {
    "processing": ["--input", f"s3://{BUCKET}/videos", "--output", f"s3://{BUCKET}/processed"],
    "training": ["--training", f"s3://{BUCKET}/processed", "--output", f"s3://{BUCKET}/models"],
}
IMAGES = {"processing": PROCESSING_IMAGE, "training": TRAINING_IMAGE}


def _argv(kind: str, *extra: str) -> list[str]:
    return ["launch", kind, *ARGV[kind], "--image", IMAGES[kind], "--role", ROLE, *extra]


def _describe(kind: str, name: str) -> dict:
    client = boto3.client("sagemaker")
    if kind == "processing":
        return client.describe_processing_job(ProcessingJobName=name)
    return client.describe_training_job(TrainingJobName=name)


def test_processing_request_field_by_field(aws: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(
        "processing",
        "--job-name", "proc-1", "--instance-type", "ml.c5.2xlarge", "--volume-size", "50",
        "--max-runtime", "3600", "--env", "VIDEO3DCNN_LOG_LEVEL=DEBUG", "--", "--frames", "8", "--size", "32x32",
    )  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == ["proc-1"]
    job = _describe("processing", "proc-1")
    assert job["RoleArn"] == ROLE
    arguments = ["--frames", "8", "--size", "32x32"]
    assert job["AppSpecification"] == {"ImageUri": PROCESSING_IMAGE, "ContainerArguments": arguments}
    assert job["ProcessingInputs"] == [
        {
            "InputName": "input_data",
            "S3Input": {
                "S3Uri": f"s3://{BUCKET}/videos",
                "LocalPath": "/opt/ml/processing/input_data",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            },
        }
    ]
    assert job["ProcessingOutputConfig"] == {
        "Outputs": [
            {
                "OutputName": "processed_data",
                "S3Output": {
                    "S3Uri": f"s3://{BUCKET}/processed",
                    "LocalPath": "/opt/ml/processing/processed_data",
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    [sent] = aws.requests("CreateProcessingJob")
    assert sent["ProcessingResources"] == {
        "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.c5.2xlarge", "VolumeSizeInGB": 50}
    }
    assert sent["Environment"] == {"VIDEO3DCNN_LOG_LEVEL": "DEBUG"}


def test_processing_without_arguments_sends_none(aws: MotoServer) -> None:
    assert main(_argv("processing", "--job-name", "proc-2")) == 0
    [sent] = aws.requests("CreateProcessingJob")
    assert sent["AppSpecification"] == {"ImageUri": PROCESSING_IMAGE}  # the API refuses an empty list
    assert "Environment" not in sent


def test_several_instances_shard_videos_and_share_one_class_list(aws: MotoServer) -> None:
    _put_videos("videos/Up/a.mp4", "videos/Down/b.mp4", "videos/Left/sub/c.mp4", "videos/readme.txt")
    assert main(_argv("processing", "--job-name", "proc-3", "--instance-count", "3", "--", "--frames", "8")) == 0
    job = _describe("processing", "proc-3")
    classes_key = "video3dcnn-launch/proc-3/classes.txt"
    assert [i["S3Input"]["S3DataDistributionType"] for i in job["ProcessingInputs"]] == [
        "ShardedByS3Key",
        "FullyReplicated",
    ]
    assert job["ProcessingInputs"][1] == {
        "InputName": "classes",
        "S3Input": {
            "S3Uri": f"s3://{BUCKET}/{classes_key}",
            "LocalPath": "/opt/ml/processing/classes",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }
    assert job["AppSpecification"]["ContainerArguments"] == [
        "--frames", "8", "--classes", "/opt/ml/processing/classes/classes.txt"
    ]  # fmt: skip
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=classes_key)["Body"].read()
    assert body == b"Down\nLeft\nUp\n"
    assert aws.requests("CreateProcessingJob")[0]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3


def test_a_local_class_list_is_uploaded_as_given(aws: MotoServer, tmp_path: Path) -> None:
    classes = tmp_path / "my-classes.txt"
    classes.write_text("# label order\nWalk\nRun\n", encoding="utf-8")
    assert main(_argv("processing", "--job-name", "proc-4", "--classes", str(classes))) == 0
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key="video3dcnn-launch/proc-4/classes.txt")["Body"].read()
    assert body == b"Walk\nRun\n"
    assert _describe("processing", "proc-4")["AppSpecification"]["ContainerArguments"][-2:] == [
        "--classes",
        "/opt/ml/processing/classes/classes.txt",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (_argv("processing", "--", "--classes", "x.txt"), "give --classes FILE to launch"),
        (_argv("processing", "--", "--output=/x"), "give --input and --output to launch"),
        (_argv("processing", "--", "--frames", "8", "--colour"), "unknown process option(s) --colour"),
        (_argv("processing", "--", "--frames", "eight"), "invalid value 'eight' for 'frames'"),
        (_argv("processing", "--", "--frames"), "process option argument --frames: expected one argument"),
        (_argv("processing", "--instance-count", "2"), "no class folders under s3://video3dcnn-test/videos"),
        (_argv("processing", "--role", "SageMakerRole"), "invalid role ARN 'SageMakerRole'"),
        (_argv("processing", "--job-name", "bad_name"), "invalid job name 'bad_name'"),
        (_argv("training", "--spot", "--max-runtime", "60", "--max-wait", "60"), "must be greater than the max"),
        (_argv("training", "--max-wait", "9000"), "--max-wait only applies to managed spot training"),
        (_argv("training", "--hp", "epochs"), "invalid --hyperparameter 'epochs': use KEY=VALUE"),
        (_argv("training", "--hp", "epoks=3"), "unknown hyperparameter 'epoks'; valid names are:"),
        (_argv("training", "--hp", "epochs=three"), "invalid value 'three' for 'epochs'"),
        (_argv("training", "--hp", "optimizer=adamw"), "choose one of adam, rmsprop, sgd"),
        (_argv("training", "--poll-interval", "0"), "--poll-interval must be between"),
    ],
)
def test_user_mistakes_are_one_line_and_submit_nothing(
    aws: MotoServer, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert aws.requests("CreateProcessingJob") == aws.requests("CreateTrainingJob") == []


def test_aws_refusal_is_one_line(aws: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv("processing", "--instance-count", "2")
    argv[argv.index("--input") + 1] = "s3://no-such-bucket-here/videos"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "listing s3://no-such-bucket-here/videos failed: NoSuchBucket" in err and "Traceback" not in err


def test_missing_region_is_a_user_error(aws: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert main(_argv("processing")) == 2
    assert "region" in capsys.readouterr().err


def test_training_request_field_by_field(aws: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(
        "training",
        "--job-name", "train-1", "--validation", f"s3://{BUCKET}/val",
        "--hp", "epochs=3", "--hp", "augment=True", "--hp", "optimizer=adam", "--hp", "learning_rate=1e-3",
        "--checkpoint-s3-uri", f"s3://{BUCKET}/checkpoints", "--spot", "--max-runtime", "7200", "--max-wait", "10800",
        "--instance-type", "ml.g4dn.xlarge", "--instance-count", "2", "--volume-size", "100", "--env", "A=1",
    )  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == ["train-1"]
    job = _describe("training", "train-1")
    assert job["RoleArn"] == ROLE
    assert job["HyperParameters"] == {"epochs": "3", "augment": "true", "optimizer": '"adam"', "learning_rate": "0.001"}
    assert job["InputDataConfig"] == [
        {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
            },
            "InputMode": "File",
        }
        for name, uri in (("training", f"s3://{BUCKET}/processed"), ("validation", f"s3://{BUCKET}/val"))
    ]
    assert job["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/models"}
    assert job["ResourceConfig"] == {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100}
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
    assert job["EnableManagedSpotTraining"] is True
    assert job["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/checkpoints", "LocalPath": "/opt/ml/checkpoints"}
    [sent] = aws.requests("CreateTrainingJob")
    assert sent["AlgorithmSpecification"] == {
        "TrainingImage": TRAINING_IMAGE,
        "TrainingInputMode": "File",
        "MetricDefinitions": [dict(item) for item in launch.METRIC_DEFINITIONS],
    }
    assert sent["Environment"] == {"A": "1"}


def test_on_demand_training_has_no_spot_or_checkpoint(aws: MotoServer) -> None:
    assert main(_argv("training", "--job-name", "train-2")) == 0
    job = _describe("training", "train-2")
    assert job["EnableManagedSpotTraining"] is False
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert "CheckpointConfig" not in job
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["training"]


def test_spot_max_wait_defaults_to_twice_the_runtime(aws: MotoServer) -> None:
    assert main(_argv("training", "--job-name", "train-3", "--spot", "--max-runtime", "1000")) == 0
    assert _describe("training", "train-3")["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 1000,
        "MaxWaitTimeInSeconds": 2000,
    }


@pytest.mark.parametrize("kind", ["processing", "training"])
def test_wait_reports_completion(aws: MotoServer, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    assert main(_argv(kind, "--job-name", "waited", "--wait", "--poll-interval", "0.05")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "waited"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ Completed", lines[1])
    result = "processed" if kind == "processing" else "models/waited/output/model.tar.gz"
    assert lines[2].endswith(f"s3://{BUCKET}/{result}") and len(lines) == 3


def test_generated_job_names_are_valid_unique_and_short() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = launch.make_job_name("video3dcnn_train " + "x" * 80, now)
    assert len(name) <= launch.JOB_NAME_MAX and launch.JOB_NAME_PATTERN.fullmatch(name)
    assert name.startswith("video3dcnn-train-xxx") and "-20250102-030405-" in name
    assert launch.make_job_name("a", now) != launch.make_job_name("a", now)
    assert launch.make_job_name("__", now).startswith("video3dcnn-20250102")


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("3", "3"),
        ("1e-3", "0.001"),
        ("true", "true"),
        ("False", "false"),
        ("adam", '"adam"'),
        ('"adam"', '"adam"'),
        ("007", '"007"'),
        ("null", "null"),
        ("[1, 2]", "[1, 2]"),
    ],
)
def test_hyperparameters_are_json_encoded(raw: str, encoded: str) -> None:
    assert launch.encode_hyperparameters({"k": raw}) == {"k": encoded}


class _FakeSageMaker:
    """Answers describe_training_job with a scripted sequence (moto jobs complete at once)."""

    def __init__(self, states: list[tuple[str, str]], reason: str | None = None) -> None:
        self.states = states
        self.reason = reason
        self.calls = 0

    def describe_training_job(self, TrainingJobName: str) -> dict:  # noqa: N803 - the boto3 keyword
        status, secondary = self.states[min(self.calls, len(self.states) - 1)]
        self.calls += 1
        return {"TrainingJobStatus": status, "SecondaryStatus": secondary, "FailureReason": self.reason}


def test_wait_reports_each_change_once_then_returns() -> None:
    states = [("InProgress", "Starting"), ("InProgress", "Starting"), ("InProgress", "Training")]
    states.append(("Completed", "Completed"))
    client, seen, slept = _FakeSageMaker(states), [], []
    result = launch.wait_for_job(client, "training", "j", 5, 100, seen.append, sleep=slept.append)
    assert seen == ["InProgress/Starting", "InProgress/Training", "Completed"]
    assert result["TrainingJobStatus"] == "Completed" and slept == [5, 5, 5]


def test_wait_raises_the_failure_reason() -> None:
    client = _FakeSageMaker([("InProgress", "Training"), ("Failed", "Failed")], reason="DataError: no shards\nin /x")
    with pytest.raises(launch.JobFailedError, match="training job j Failed: DataError: no shards in /x"):
        launch.wait_for_job(client, "training", "j", 1, 100, lambda s: None, sleep=lambda s: None)


def test_wait_gives_up_after_the_timeout() -> None:
    client = _FakeSageMaker([("InProgress", "Training")])
    with pytest.raises(launch.JobFailedError, match="still InProgress after 3 s"):
        launch.wait_for_job(client, "training", "j", 1, 3, lambda s: None, sleep=lambda s: None)


def test_wait_timeout_covers_the_jobs_own_limit() -> None:
    assert launch.wait_timeout({"StoppingCondition": {"MaxRuntimeInSeconds": 60}}) == 60 + launch.WAIT_MARGIN_S
    spot = {"StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120}}
    assert launch.wait_timeout(spot) == 120 + launch.WAIT_MARGIN_S


@pytest.mark.parametrize("uri", ["bucket/key", "s3:/bucket", "https://bucket/key", "s3://"])
def test_non_s3_uris_are_refused(uri: str) -> None:
    with pytest.raises(launch.ConfigError, match="not an S3 URI"):
        launch.parse_s3_uri(uri)


def test_request_builders_are_pure_and_json_serialisable() -> None:
    job = launch.JobSpec(name="j", role_arn=ROLE, image_uri=TRAINING_IMAGE, instance_type="ml.m5.xlarge")
    request = launch.training_request(job, {"training": "s3://b/t"}, "s3://b/o")
    assert json.loads(json.dumps(request)) == request
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    with pytest.raises(launch.ConfigError, match="at least the training channel"):
        launch.training_request(job, {}, "s3://b/o")


WITHOUT_OPENCV = """
import sys
sys.modules["cv2"] = None  # `import cv2` raises ImportError, as with only the aws extra installed
from video3dcnn.cli import main
from video3dcnn.cli.launch import check_process_arguments
check_process_arguments(["--frames", "16", "--size", "112x112", "--num-parts", "2", "--part-index", "1"])
code = main({argv!r})
print(code, sorted(name for name in ("cv2", "keras", "tensorflow", "video3dcnn.processing") if sys.modules.get(name)))
"""


def test_process_options_are_checked_without_opencv() -> None:
    """With only the aws extra (no OpenCV, no Keras) launch still refuses a bad process option before any AWS call."""
    argv = _argv("processing", "--", "--frames", "16", "--num-parts", "2")
    code = textwrap.dedent(WITHOUT_OPENCV.format(argv=argv))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "2 []"  # exit code 2; none of the heavy modules was imported
    assert "--num-parts and --part-index go together" in result.stderr and "Traceback" not in result.stderr
