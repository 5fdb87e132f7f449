"""``video3dcnn launch transform|endpoint``: the CreateModel, CreateTransformJob, CreateEndpointConfig and
CreateEndpoint requests, checked against a moto server on 127.0.0.1 (read back with describe_* and, where moto does not
echo a field, from the raw request body its recorder kept), and the pure planning of a transform's input.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

import boto3  # noqa: E402
from localservers import MotoServer, moto, moto_module  # noqa: E402,F401 - fixtures

from video3dcnn.cli import EXIT_USER_ERROR, main  # noqa: E402
from video3dcnn.errors import ConfigError, DataError  # noqa: E402
from video3dcnn.launch import (  # noqa: E402
    TransformInput,
    folder_uri,
    plan_transform_input,
    transform_request,
)

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-video3dcnn-training:abc1234"
BUCKET = "video3dcnn-test"
MODEL_DATA = f"s3://{BUCKET}/models/train-1/output/model.tar.gz"
MB = 1024 * 1024


@pytest.fixture
def aws(moto: MotoServer) -> MotoServer:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return moto


def _put(*items: tuple[str, int]) -> None:
    s3 = boto3.client("s3")
    for key, size in items:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"\0" * size)


def _transform(*extra: str) -> list[str]:
    return ["launch", "transform", "--input", f"s3://{BUCKET}/videos", "--output", f"s3://{BUCKET}/predictions",
            "--model-data", MODEL_DATA, "--image", IMAGE, "--role", ROLE, *extra]  # fmt: skip


def _endpoint(*extra: str) -> list[str]:
    return ["launch", "endpoint", "--model-data", MODEL_DATA, "--image", IMAGE, "--role", ROLE, *extra]


def test_transform_creates_the_model_and_a_job_sending_one_video_per_request(aws, capsys) -> None:
    _put(("videos/Up/a.mp4", 2 * MB + 1), ("videos/Down/b.MP4", 1000), ("videos-old/c.mp4", 10))
    argv = _transform("--job-name", "tr-1", "--top-k", "3", "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=2",
                      "--instance-type", "ml.c5.2xlarge", "--instance-count", "2")  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == ["tr-1"]
    sagemaker = boto3.client("sagemaker")
    model = sagemaker.describe_model(ModelName="tr-1")
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE and model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    [sent_model] = aws.requests("CreateModel")
    environment = sent_model["PrimaryContainer"]["Environment"]
    assert environment == {"VIDEO3DCNN_TOP_K": "3", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    [sent] = aws.requests("CreateTransformJob")
    assert sent == {
        "TransformJobName": "tr-1",
        "ModelName": "tr-1",
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": 3,  # the largest video, rounded up
        "TransformInput": {
            # the trailing slash keeps videos-old/ out
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/videos/"}},
            "ContentType": "video/mp4",
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/predictions", "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 2},
    }
    assert sagemaker.describe_transform_job(TransformJobName="tr-1")["ModelName"] == "tr-1"


def test_transform_with_other_files_beside_the_videos_lists_the_videos_in_a_manifest(aws) -> None:
    _put(("videos/Up/a.avi", 100), ("videos/Down/b.mkv", 100), ("videos/classes.txt", 10), ("videos/Up/", 0))
    assert main(_transform("--job-name", "tr-2", "--accept", "application/json", "--max-concurrent", "4",
                           "--invocation-timeout", "1200")) == 0  # fmt: skip
    [sent] = aws.requests("CreateTransformJob")
    manifest_uri = f"s3://{BUCKET}/video3dcnn-launch/tr-2/videos.manifest"
    source = {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": manifest_uri}}
    assert sent["TransformInput"]["DataSource"] == source
    assert sent["TransformInput"]["ContentType"] == "application/octet-stream"  # AVI and MKV: FFmpeg tells them apart
    assert sent["TransformOutput"]["Accept"] == "application/json"
    assert sent["MaxConcurrentTransforms"] == 4 and sent["ModelClientConfig"] == {"InvocationsTimeoutInSeconds": 1200}
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key="video3dcnn-launch/tr-2/videos.manifest")["Body"].read()
    assert json.loads(body) == [{"prefix": f"s3://{BUCKET}/videos/"}, "Down/b.mkv", "Up/a.avi"]


def test_transform_wait_follows_the_job_to_its_output(aws, capsys) -> None:
    _put(("videos/a.webm", 100))
    assert main(_transform("--job-name", "tr-3", "--wait", "--poll-interval", "0.01")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tr-3" and lines[-2].endswith(" Completed") and lines[-1] == f"output: s3://{BUCKET}/predictions"
    assert aws.requests("CreateTransformJob")[0]["TransformInput"]["ContentType"] == "video/webm"


@pytest.mark.parametrize(
    ("extra", "objects", "message"),
    [
        ((), [], "no video files under"),
        ((), [("videos/notes.txt", 5)], "no video files under"),
        (("--content-type", "image/gif"), [("videos/a.mp4", 5)], "'image/gif' is not one the server accepts"),
        (("--max-payload", "1"), [("videos/a.mp4", 3 * MB)], "below the largest video (3 MB)"),
        (("--max-concurrent", "50"), [("videos/a.mp4", 3 * MB)], "exceed the 100 MB"),
        (("--accept", "text/html"), [("videos/a.mp4", 5)], "accept must be one of"),
        (("--top-k", "0"), [("videos/a.mp4", 5)], "--top-k must be at least 1"),
    ],
    ids=["empty", "no-videos", "content-type", "payload-too-small", "too-concurrent", "accept", "top-k"],
)
def test_transform_refuses_bad_input_in_one_line_before_creating_anything(aws, capsys, extra, objects, message):
    _put(*objects)
    assert main(_transform("--job-name", "tr-x", *extra)) == EXIT_USER_ERROR
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and message in errors[0]
    assert aws.requests("CreateModel") == [] and aws.requests("CreateTransformJob") == []


@pytest.mark.parametrize(
    ("model_data", "role", "message"),
    [
        (f"s3://{BUCKET}/models/model.keras", ROLE, "model.tar.gz in S3"),
        ("/local/model.tar.gz", ROLE, "not an S3 URI"),
        (MODEL_DATA, "SageMakerRole", "invalid role ARN"),
    ],
)
def test_a_bad_model_is_refused_before_any_call(moto, capsys, model_data, role, message):
    argv = ["launch", "endpoint", "--model-data", model_data, "--image", IMAGE, "--role", role]
    assert main(argv) == EXIT_USER_ERROR
    assert message in capsys.readouterr().err
    assert moto.recording() == []


def test_a_real_time_endpoint(aws, capsys) -> None:
    assert main(_endpoint("--endpoint-name", "ep-1", "--instance-type", "ml.c5.large", "--wait",
                          "--poll-interval", "0.01")) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ep-1" and lines[-1] == "endpoint: ep-1 InService"
    sagemaker = boto3.client("sagemaker")
    assert sagemaker.describe_model(ModelName="ep-1")["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    [config] = aws.requests("CreateEndpointConfig")
    assert config == {
        "EndpointConfigName": "ep-1",
        "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": "ep-1", "InitialInstanceCount": 1,
             "InstanceType": "ml.c5.large", "InitialVariantWeight": 1.0}  # fmt: skip
        ],
    }
    assert aws.requests("CreateEndpoint") == [{"EndpointName": "ep-1", "EndpointConfigName": "ep-1"}]
    assert sagemaker.describe_endpoint(EndpointName="ep-1")["EndpointStatus"] == "InService"


def test_an_asynchronous_endpoint(aws) -> None:
    argv = _endpoint("--endpoint-name", "ep-2", "--async-output", f"s3://{BUCKET}/async/out",
                     "--async-failure", f"s3://{BUCKET}/async/failed", "--max-concurrent-invocations", "2")  # fmt: skip
    assert main(argv) == 0
    [config] = aws.requests("CreateEndpointConfig")
    assert config["AsyncInferenceConfig"] == {
        "OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/async/out", "S3FailurePath": f"s3://{BUCKET}/async/failed"},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
    }


def test_asynchronous_options_need_async_output(moto, capsys) -> None:
    assert main(_endpoint("--async-failure", f"s3://{BUCKET}/failed")) == EXIT_USER_ERROR
    assert "add --async-output" in capsys.readouterr().err
    assert moto.recording() == []


# --- pure planning ---


def test_a_video_above_100_mb_is_sent_to_an_asynchronous_endpoint():
    with pytest.raises(DataError, match="big.mp4 is 101 MB.*asynchronous endpoint"):
        plan_transform_input("s3://b/v/", [("v/small.mp4", 10), ("v/big.mp4", 101 * MB)])


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["v/a.mp4", "v/b.m4v"], "video/mp4"),
        (["v/a.AVI", "v/b.avi"], "video/x-msvideo"),
        (["v/a.mov"], "video/quicktime"),
        (["v/a.mp4", "v/b.avi"], "application/octet-stream"),
        (["v/a.ts"], "application/octet-stream"),
    ],
)
def test_content_type_from_the_extensions(keys, expected):
    data, entries = plan_transform_input("s3://b/v/", [(key, 10) for key in keys])
    assert data == TransformInput("s3://b/v/", expected, 1) and entries == []


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("s3://b/videos", "s3://b/videos/"), ("s3://b/videos/", "s3://b/videos/"), ("s3://b", "s3://b"),
     ("s3://b/one.mp4", "s3://b/one.mp4")],  # fmt: skip
)
def test_folder_uri(uri, expected):
    assert folder_uri(uri) == expected


def test_transform_request_limits():
    data = TransformInput("s3://b/v/", "video/mp4", 101)
    with pytest.raises(ConfigError, match="max payload must be 1-100 MB"):
        transform_request("job", "model", data, "s3://b/out", "ml.c5.xlarge")
    with pytest.raises(ConfigError, match="invocation timeout must be 1-3600"):
        transform_request("job", "model", TransformInput("s3://b/v/", "video/mp4", 1), "s3://b/out", "ml.c5.xlarge",
                          invocation_timeout_s=4000)  # fmt: skip
