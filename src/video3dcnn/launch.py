"""Submit the two images as real SageMaker jobs with boto3: request builders, submission and waiting.

The request builders are pure functions returning the exact ``CreateProcessingJob`` / ``CreateTrainingJob`` request
dicts, so what is sent can be read and tested field by field. boto3 is imported lazily (extra ``aws``); every AWS error
becomes a one-line ``AwsError``.

API pages: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html and
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from video3dcnn.contract import CHECKPOINT_DIR, OPT_ML, PROCESSING_INPUT, PROCESSING_OUTPUT
from video3dcnn.errors import ConfigError, DataError, ToolkitError
from video3dcnn.metric_line import METRIC_DEFINITIONS
from video3dcnn.shards import CLASSES_FILE, classes_text

logger = logging.getLogger(__name__)

# Limits and patterns from the botocore service model (sagemaker 2017-07-24).
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
JOB_NAME_MAX = 63
ROLE_ARN_PATTERN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
S3_URI_PATTERN = re.compile(r"s3://(?P<bucket>[^/]+)/?(?P<key>.*)")
ENVIRONMENT_MAX = 100

PROCESSING_INPUT_NAME = "input_data"
PROCESSING_OUTPUT_NAME = "processed_data"
CLASSES_INPUT_NAME = "classes"
CLASSES_LOCAL_DIR = OPT_ML / "processing" / CLASSES_INPUT_NAME
STAGING_PREFIX = "video3dcnn-launch"  # where launch uploads its own files, in the output bucket

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
WAIT_MARGIN_S = 3600  # start-up, download and upload time beyond MaxRuntime/MaxWaitTime


class AwsError(ToolkitError):
    """An AWS call was refused or could not be made (credentials, region, role, quota, network)."""


class JobFailedError(ToolkitError):
    """A submitted job ended Failed or Stopped, or did not finish in time."""


@dataclass(frozen=True)
class JobSpec:
    """What every job needs, whatever its kind.

    Attributes:
        name: the job name (unique per account and region; ``make_job_name`` builds one).
        role_arn: the IAM role SageMaker assumes (needs S3 access and, for ECR images, ECR pull).
        image_uri: the image, usually an ECR URI printed by build_and_push.sh.
        instance_type: e.g. ``ml.m5.xlarge``.
        instance_count: number of instances.
        volume_size_gb: EBS volume per instance.
        max_runtime_s: ``StoppingCondition.MaxRuntimeInSeconds``.
        environment: extra environment variables for the container.
    """

    name: str
    role_arn: str
    image_uri: str
    instance_type: str
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_s: int = 86400
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_job_name(self.name)
        if not ROLE_ARN_PATTERN.fullmatch(self.role_arn):
            raise ConfigError(f"invalid role ARN {self.role_arn!r}: expected arn:aws:iam::<account id>:role/<name>")
        if not self.image_uri or any(c.isspace() for c in self.image_uri):
            raise ConfigError(f"invalid image URI {self.image_uri!r}: use the URI build_and_push.sh printed")
        counts = {"instance count": self.instance_count, "volume size": self.volume_size_gb}
        for label, value in {**counts, "max runtime": self.max_runtime_s}.items():
            if value < 1:
                raise ConfigError(f"{label} must be at least 1, got {value}")
        if len(self.environment) > ENVIRONMENT_MAX:
            raise ConfigError(f"at most {ENVIRONMENT_MAX} environment variables, got {len(self.environment)}")


@dataclass(frozen=True)
class SpotOptions:
    """Managed spot training: ``MaxWaitTimeInSeconds`` must exceed ``MaxRuntimeInSeconds``."""

    max_wait_s: int


def validate_job_name(name: str) -> str:
    """Return ``name`` if SageMaker accepts it as a job name, else raise ConfigError."""
    if not JOB_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"invalid job name {name!r}: use 1-{JOB_NAME_MAX} letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def make_job_name(base: str, now: datetime | None = None) -> str:
    """A unique, valid job name: ``base`` (cleaned, shortened) plus a UTC timestamp and a random suffix.

    Example: ``make_job_name("video3dcnn_train")`` -> ``video3dcnn-train-20250101-120000-a1b2``.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    suffix = f"-{stamp}-{secrets.token_hex(2)}"
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", base).strip("-") or "video3dcnn"
    return validate_job_name(cleaned[: JOB_NAME_MAX - len(suffix)].rstrip("-") + suffix)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; raise ConfigError for anything else."""
    match = S3_URI_PATTERN.fullmatch(uri)
    if not match:
        raise ConfigError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    return match["bucket"], match["key"]


def encode_hyperparameters(raw: Mapping[str, str]) -> dict[str, str]:
    """JSON-encode hyperparameter values the way the training toolkit decodes them.

    Numbers, ``true``/``false`` (any case) and ``null`` keep their JSON text; everything else becomes a JSON string:
    ``{"epochs": "3", "augment": "True", "optimizer": "adam"}`` -> ``{"epochs": "3", "augment": "true",
    "optimizer": "\\"adam\\""}``.
    """
    encoded = {}
    for key, value in raw.items():
        text = value.strip()
        try:
            decoded = json.loads(text.lower() if text.lower() in ("true", "false") else text)
        except json.JSONDecodeError:
            decoded = value
        encoded[key] = json.dumps(decoded)
    return encoded


def processing_request(
    job: JobSpec,
    input_uri: str,
    output_uri: str,
    arguments: Sequence[str] = (),
    classes_uri: str | None = None,
) -> dict[str, Any]:
    """Build the CreateProcessingJob request for the processing image.

    Args:
        job: name, role, image and resources.
        input_uri: ``s3://`` prefix holding ``<Class>/<video>`` folders; mounted at /opt/ml/processing/input_data and
            split by key over the instances when there are several (``ShardedByS3Key``).
        output_uri: ``s3://`` prefix the shards are uploaded to at the end of the job.
        arguments: ``ContainerArguments`` appended to the image's ``video3dcnn process`` entry point.
        classes_uri: an uploaded classes.txt, given to every instance (``FullyReplicated``).

    Returns:
        The request dict, ready for ``create_processing_job(**request)``.
    """
    for uri in (input_uri, output_uri):
        parse_s3_uri(uri)
    distribution = "ShardedByS3Key" if job.instance_count > 1 else "FullyReplicated"
    inputs = [_processing_input(PROCESSING_INPUT_NAME, input_uri, str(OPT_ML / PROCESSING_INPUT), distribution)]
    if classes_uri:
        inputs.append(_processing_input(CLASSES_INPUT_NAME, classes_uri, str(CLASSES_LOCAL_DIR), "FullyReplicated"))
    app: dict[str, Any] = {"ImageUri": job.image_uri}
    if arguments:
        app["ContainerArguments"] = list(arguments)
    output = {"S3Uri": output_uri, "LocalPath": str(OPT_ML / PROCESSING_OUTPUT), "S3UploadMode": "EndOfJob"}
    request = {
        "ProcessingJobName": job.name,
        "RoleArn": job.role_arn,
        "AppSpecification": app,
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": PROCESSING_OUTPUT_NAME, "S3Output": output}]},
        "ProcessingResources": {"ClusterConfig": _cluster(job)},
        "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_s},
    }
    return _with_environment(request, job)


def _processing_input(name: str, uri: str, local_path: str, distribution: str) -> dict[str, Any]:
    s3_input = {
        "S3Uri": uri,
        "LocalPath": local_path,
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
        "S3DataDistributionType": distribution,
    }
    return {"InputName": name, "S3Input": s3_input}


def _cluster(job: JobSpec) -> dict[str, Any]:
    return {
        "InstanceCount": job.instance_count,
        "InstanceType": job.instance_type,
        "VolumeSizeInGB": job.volume_size_gb,
    }


def _with_environment(request: dict[str, Any], job: JobSpec) -> dict[str, Any]:
    if job.environment:
        request["Environment"] = dict(job.environment)
    return request


def training_request(
    job: JobSpec,
    channels: Mapping[str, str],
    output_uri: str,
    hyperparameters: Mapping[str, str] | None = None,
    checkpoint_uri: str | None = None,
    spot: SpotOptions | None = None,
    metric_definitions: Sequence[Mapping[str, str]] = METRIC_DEFINITIONS,
) -> dict[str, Any]:
    """Build the CreateTrainingJob request for the training image.

    Args:
        job: name, role, image and resources.
        channels: channel name (``training``, ``validation``) -> ``s3://`` prefix of processed shards.
        output_uri: ``S3OutputPath``; the model lands in ``<output_uri>/<job>/output/model.tar.gz``.
        hyperparameters: already JSON-encoded values (see ``encode_hyperparameters``).
        checkpoint_uri: ``CheckpointConfig.S3Uri``, synced with /opt/ml/checkpoints.
        spot: managed spot options; None for on-demand instances.
        metric_definitions: CloudWatch metric regexes over the training log.

    Returns:
        The request dict, ready for ``create_training_job(**request)``.

    Raises:
        ConfigError: no channel, a bad URI, or a spot wait time not above the max runtime.
    """
    if not channels:
        raise ConfigError("a training job needs at least the training channel (s3:// prefix of processed shards)")
    for uri in (*channels.values(), output_uri, *([checkpoint_uri] if checkpoint_uri else [])):
        parse_s3_uri(uri)
    request = {
        "TrainingJobName": job.name,
        "RoleArn": job.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": job.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(item) for item in metric_definitions],
        },
        "HyperParameters": dict(hyperparameters or {}),
        "InputDataConfig": [_channel(name, uri) for name, uri in channels.items()],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": _cluster(job),
        "StoppingCondition": _stopping_condition(job, spot),
        "EnableManagedSpotTraining": spot is not None,
    }
    if checkpoint_uri:
        request["CheckpointConfig"] = {"S3Uri": checkpoint_uri, "LocalPath": str(OPT_ML / CHECKPOINT_DIR)}
    return _with_environment(request, job)


def _channel(name: str, uri: str) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}, "InputMode": "File"}


def _stopping_condition(job: JobSpec, spot: SpotOptions | None) -> dict[str, int]:
    condition = {"MaxRuntimeInSeconds": job.max_runtime_s}
    if spot is not None:
        if spot.max_wait_s <= job.max_runtime_s:
            raise ConfigError(
                f"spot max wait ({spot.max_wait_s} s) must be greater than the max runtime ({job.max_runtime_s} s)"
            )
        condition["MaxWaitTimeInSeconds"] = spot.max_wait_s
    return condition


def aws_client(service: str, region: str | None = None):
    """A boto3 client; AWS_ENDPOINT_URL and the usual credential chain apply.

    Raises:
        ToolkitError: boto3 is not installed.
        AwsError: no region could be found.
    """
    try:
        import boto3
    except ImportError:
        raise ToolkitError("boto3 is not installed: pip install 'video3dcnn[aws]'") from None
    with aws_errors(f"creating the {service} client"):
        return boto3.session.Session(region_name=region).client(service)


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn botocore errors raised inside the block into a one-line ``AwsError`` naming ``action``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(f"{action} failed: {error.get('Code', 'Error')}: {error.get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise AwsError(f"{action} failed: {exc} (check credentials, --region and the network)") from None


def list_class_folders(s3, uri: str) -> list[str]:
    """Names of the class folders directly under the ``s3://`` prefix ``uri``, sorted.

    Raises:
        DataError: the prefix holds no folders.
    """
    bucket, key = parse_s3_uri(uri)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    names: list[str] = []
    with aws_errors(f"listing {uri}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            names += [item["Prefix"][len(prefix) :].rstrip("/") for item in page.get("CommonPrefixes", [])]
    if not names:
        raise DataError(
            f"no class folders under {uri}: expected {uri.rstrip('/')}/<Class>/<video files>, "
            "else give the class list with --classes FILE"
        )
    return sorted(names)


def upload_classes(s3, uri: str, classes: Sequence[str]) -> str:
    """Upload ``classes.txt`` (one name per line) under the ``s3://`` prefix ``uri``; return the object's URI.

    Raises:
        DataError: a class name the list cannot hold (a line break, a leading ``#``...: ``shards.classes_text``).
    """
    bucket, key = parse_s3_uri(uri)
    key = f"{key.rstrip('/')}/{CLASSES_FILE}".lstrip("/")
    body = classes_text(classes).encode("utf-8")
    with aws_errors(f"uploading s3://{bucket}/{key}"):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def staging_uri(output_uri: str, job_name: str) -> str:
    """Where launch keeps its own files for ``job_name``: next to, not inside, the job's output."""
    bucket, _ = parse_s3_uri(output_uri)
    return f"s3://{bucket}/{STAGING_PREFIX}/{job_name}"


@dataclass(frozen=True)
class _Kind:
    create: str
    describe: str
    name_key: str
    status_key: str
    arn_key: str
    reason_keys: tuple[str, ...]


KINDS = {
    "processing": _Kind(
        create="create_processing_job",
        describe="describe_processing_job",
        name_key="ProcessingJobName",
        status_key="ProcessingJobStatus",
        arn_key="ProcessingJobArn",
        reason_keys=("FailureReason", "ExitMessage"),
    ),
    "training": _Kind(
        create="create_training_job",
        describe="describe_training_job",
        name_key="TrainingJobName",
        status_key="TrainingJobStatus",
        arn_key="TrainingJobArn",
        reason_keys=("FailureReason",),
    ),
}


def submit_job(client, kind: str, request: Mapping[str, Any]) -> str:
    """Create the job described by ``request`` (``kind`` is ``processing`` or ``training``); return its ARN."""
    spec = KINDS[kind]
    name = request[spec.name_key]
    with aws_errors(f"creating {kind} job {name}"):
        response = getattr(client, spec.create)(**request)
    logger.info("submitted %s job %s", kind, name)
    return response[spec.arn_key]


def describe_job(client, kind: str, name: str) -> dict[str, Any]:
    """The current DescribeProcessingJob / DescribeTrainingJob response for job ``name``."""
    spec = KINDS[kind]
    with aws_errors(f"describing {kind} job {name}"):
        return getattr(client, spec.describe)(**{spec.name_key: name})


def job_state(kind: str, description: Mapping[str, Any]) -> str:
    """``Status`` or, for training, ``Status/SecondaryStatus``: what ``wait_for_job`` reports on change."""
    status = description[KINDS[kind].status_key]
    secondary = description.get("SecondaryStatus") if kind == "training" else None
    return f"{status}/{secondary}" if secondary and secondary != status else status


def wait_for_job(
    client,
    kind: str,
    name: str,
    poll_s: float,
    timeout_s: float,
    report: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll job ``name`` every ``poll_s`` seconds until it ends, calling ``report`` on every state change.

    Returns:
        The final description of a Completed job.

    Raises:
        JobFailedError: the job ended Failed or Stopped (the message carries its reason), or ``timeout_s`` passed.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        description = describe_job(client, kind, name)
        state = job_state(kind, description)
        if state != last:
            report(state)
            last = state
        status = description[KINDS[kind].status_key]
        if status in TERMINAL_STATUSES:
            return _finished(kind, name, status, description)
        if time.monotonic() + poll_s > deadline:
            raise JobFailedError(f"{kind} job {name} still {status} after {timeout_s:.0f} s; it keeps running")
        sleep(poll_s)


def _finished(kind: str, name: str, status: str, description: Mapping[str, Any]) -> dict[str, Any]:
    if status == "Completed":
        return dict(description)
    reasons = [str(description[key]) for key in KINDS[kind].reason_keys if description.get(key)]
    detail = "; ".join(reasons) or "no reason given"
    raise JobFailedError(f"{kind} job {name} {status}: {' '.join(detail.split())} (see its CloudWatch logs)")


def wait_timeout(request: Mapping[str, Any]) -> int:
    """How long ``--wait`` waits at most: the job's own time limit plus start-up and upload time."""
    condition = request["StoppingCondition"]
    return condition.get("MaxWaitTimeInSeconds", condition["MaxRuntimeInSeconds"]) + WAIT_MARGIN_S
