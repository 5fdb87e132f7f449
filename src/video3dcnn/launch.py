"""Submit the two images as real SageMaker jobs with boto3: request builders, submission and waiting.

The request builders are pure functions returning the exact ``CreateProcessingJob`` / ``CreateTrainingJob`` request
dicts, and for predictions ``CreateModel`` (the training image serving a ``model.tar.gz``), ``CreateTransformJob``,
``CreateEndpointConfig`` and ``CreateEndpoint``, so what is sent can be read and tested field by field. boto3 is
imported lazily (extra ``aws``); every AWS error becomes a one-line ``AwsError``.

API pages: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_<Operation>.html for each operation above.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from video3dcnn.content_types import CSV, OCTET_STREAM, REQUEST_TYPES, RESPONSE_TYPES, content_type_for
from video3dcnn.contract import CHECKPOINT_DIR, OPT_ML, PROCESSING_INPUT, PROCESSING_OUTPUT, TOP_K_ENV
from video3dcnn.discovery import DEFAULT_EXTENSIONS
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

WAIT_MARGIN_S = 3600  # start-up, download and upload time beyond MaxRuntime/MaxWaitTime
TRANSFORM_WAIT_S = 48 * 3600  # a transform job has no time limit of its own
ENDPOINT_WAIT_S = 3600  # an endpoint is usually InService after 5-10 minutes

# Hosting limits (CreateTransformJob, CreateModel, InvokeEndpoint).
MB = 1024 * 1024
TRANSFORM_PAYLOAD_MAX_MB = 100  # MaxPayloadInMB, and MaxConcurrentTransforms * MaxPayloadInMB, at most 100
TRANSFORM_ENVIRONMENT_MAX = 16
INVOCATION_TIMEOUT_MAX_S = 3600
VARIANT_NAME = "AllTraffic"  # the SDK's name for an endpoint's only variant
MANIFEST_FILE = "videos.manifest"


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
        _check_role_and_image(self.role_arn, self.image_uri)
        counts = {"instance count": self.instance_count, "volume size": self.volume_size_gb}
        for label, value in {**counts, "max runtime": self.max_runtime_s}.items():
            if value < 1:
                raise ConfigError(f"{label} must be at least 1, got {value}")
        if len(self.environment) > ENVIRONMENT_MAX:
            raise ConfigError(f"at most {ENVIRONMENT_MAX} environment variables, got {len(self.environment)}")


def _check_role_and_image(role_arn: str, image_uri: str) -> None:
    if not ROLE_ARN_PATTERN.fullmatch(role_arn):
        raise ConfigError(f"invalid role ARN {role_arn!r}: expected arn:aws:iam::<account id>:role/<name>")
    if not image_uri or any(c.isspace() for c in image_uri):
        raise ConfigError(f"invalid image URI {image_uri!r}: use the URI build_and_push.sh printed")


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


@dataclass(frozen=True)
class ModelSpec:
    """A SageMaker model: the training image serving one trained ``model.tar.gz`` (``docker run <image> serve``).

    Attributes:
        name: the model name (``make_job_name`` builds one; endpoint configs and endpoints reuse it).
        role_arn: the IAM role SageMaker assumes (S3 read of the archive, ECR pull).
        image_uri: the training image.
        model_data_uri: ``s3://.../model.tar.gz`` of a training job.
        environment: container variables, e.g. ``VIDEO3DCNN_TOP_K`` or ``SAGEMAKER_MODEL_SERVER_WORKERS``.
    """

    name: str
    role_arn: str
    image_uri: str
    model_data_uri: str
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_job_name(self.name)
        _check_role_and_image(self.role_arn, self.image_uri)
        parse_s3_uri(self.model_data_uri)
        if not self.model_data_uri.endswith(".tar.gz"):
            raise ConfigError(f"model data must be a training job's model.tar.gz in S3, not {self.model_data_uri!r}")
        if len(self.environment) > ENVIRONMENT_MAX:
            raise ConfigError(f"at most {ENVIRONMENT_MAX} environment variables, got {len(self.environment)}")


def model_request(model: ModelSpec) -> dict[str, Any]:
    """Build the CreateModel request: SageMaker extracts the archive into /opt/ml/model and runs ``serve``."""
    container: dict[str, Any] = {"Image": model.image_uri, "ModelDataUrl": model.model_data_uri}
    if model.environment:
        container["Environment"] = dict(model.environment)
    return {"ModelName": model.name, "ExecutionRoleArn": model.role_arn, "PrimaryContainer": container}


def model_environment(environment: Mapping[str, str], top_k: int | None) -> dict[str, str]:
    """The container variables of a model: ``environment`` plus ``VIDEO3DCNN_TOP_K`` when ``top_k`` is given."""
    if top_k is not None and top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    return {**environment, **({TOP_K_ENV: str(top_k)} if top_k is not None else {})}


@dataclass(frozen=True)
class TransformInput:
    """What a Batch Transform job reads: one video per request (``SplitType`` None).

    Attributes:
        uri: the ``s3://`` prefix of the videos, or of a manifest listing them (``manifest`` True).
        content_type: sent with every video (the server also recognises a container from its bytes).
        max_payload_mb: at least the largest video, at most 100.
        manifest: ``uri`` is a manifest file (the prefix held other files too).
    """

    uri: str
    content_type: str
    max_payload_mb: int
    manifest: bool = False


def plan_transform_input(
    input_uri: str, objects: Sequence[tuple[str, int]], content_type: str | None = None
) -> tuple[TransformInput, list[str]]:
    """Decide how a transform job reads the videos among ``objects`` (key, size) listed under ``input_uri``.

    Returns:
        The input (``manifest`` True when other files lie beside the videos; upload the manifest and point ``uri`` at
        it) and the manifest's entries: the videos' keys relative to the prefix (empty without a manifest).

    Raises:
        DataError: no video under the prefix, or one larger than a transform request can carry.
    """
    bucket, prefix = parse_s3_uri(input_uri)
    if content_type is not None and content_type not in REQUEST_TYPES:
        raise ConfigError(f"content type {content_type!r} is not one the server accepts: {', '.join(REQUEST_TYPES)}")
    videos = [(key, size) for key, size in objects if key.lower().endswith(DEFAULT_EXTENSIONS)]
    others = [key for key, _ in objects if not key.endswith("/") and not key.lower().endswith(DEFAULT_EXTENSIONS)]
    if not videos:
        raise DataError(f"no video files under {input_uri} (extensions {' '.join(DEFAULT_EXTENSIONS)})")
    largest_key, largest = max(videos, key=lambda item: item[1])
    if largest > TRANSFORM_PAYLOAD_MAX_MB * MB:
        raise DataError(
            f"s3://{bucket}/{largest_key} is {largest / MB:.0f} MB: a Batch Transform request carries at most "
            f"{TRANSFORM_PAYLOAD_MAX_MB} MB; serve such videos from an asynchronous endpoint "
            "(launch endpoint --async-output)"
        )
    types = {content_type_for(key) for key, _ in videos}
    chosen = content_type or (types.pop() if len(types) == 1 else OCTET_STREAM)
    payload = max(1, math.ceil(largest / MB))
    if not others:
        return TransformInput(input_uri, chosen, payload), []
    logger.info("%d files under %s are not videos (e.g. %s): listing the %d videos in a manifest", len(others),
                input_uri, others[0], len(videos))  # fmt: skip
    return TransformInput(input_uri, chosen, payload, manifest=True), [key[len(prefix) :] for key, _ in videos]


def folder_uri(uri: str) -> str:
    """``uri`` ending in ``/`` unless it names a video: an S3 prefix ``videos`` would also match ``videos-old/...``."""
    _, key = parse_s3_uri(uri)
    if not key or key.endswith("/") or key.lower().endswith(DEFAULT_EXTENSIONS):
        return uri
    return uri + "/"


def manifest_body(input_uri: str, entries: Sequence[str]) -> bytes:
    """A Batch Transform manifest: ``[{"prefix": "<input_uri>/"}, "<relative key>", ...]``."""
    return json.dumps([{"prefix": input_uri.rstrip("/") + "/"}, *entries], indent=0).encode("utf-8")


def transform_request(
    name: str,
    model_name: str,
    data: TransformInput,
    output_uri: str,
    instance_type: str,
    instance_count: int = 1,
    accept: str = CSV,
    max_concurrent: int | None = None,
    invocation_timeout_s: int | None = None,
) -> dict[str, Any]:
    """Build the CreateTransformJob request: every video one request, every answer one ``<video>.out`` line.

    Args:
        name: the job name.
        model_name: a model made by ``model_request``.
        data: what to read (``plan_transform_input``).
        output_uri: where ``<key below the input prefix>.out`` files go.
        instance_type, instance_count: the instances.
        accept: ``text/csv`` (one line per video) or ``application/json``.
        max_concurrent: requests in flight per instance; None lets the container say (its workers).
        invocation_timeout_s: how long one video may take (SageMaker's default: 600 s).

    Raises:
        ConfigError: a bad URI, accept type, count, timeout, or a concurrency times payload above 100 MB.
    """
    validate_job_name(name)
    parse_s3_uri(output_uri)
    if accept not in RESPONSE_TYPES:
        raise ConfigError(f"accept must be one of {', '.join(RESPONSE_TYPES)}, not {accept!r}")
    if instance_count < 1 or (max_concurrent is not None and max_concurrent < 1):
        raise ConfigError("instance count and max concurrent transforms must be at least 1")
    if not 1 <= data.max_payload_mb <= TRANSFORM_PAYLOAD_MAX_MB:
        raise ConfigError(f"max payload must be 1-{TRANSFORM_PAYLOAD_MAX_MB} MB, got {data.max_payload_mb}")
    if max_concurrent is not None and max_concurrent * data.max_payload_mb > TRANSFORM_PAYLOAD_MAX_MB:
        raise ConfigError(
            f"{max_concurrent} concurrent requests of up to {data.max_payload_mb} MB exceed the "
            f"{TRANSFORM_PAYLOAD_MAX_MB} MB SageMaker allows: lower --max-concurrent"
        )
    source = {"S3DataType": "ManifestFile" if data.manifest else "S3Prefix", "S3Uri": data.uri}
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model_name,
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": data.max_payload_mb,
        "TransformInput": {
            "DataSource": {"S3DataSource": source},
            "ContentType": data.content_type,
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": accept, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
    }
    if max_concurrent is not None:
        request["MaxConcurrentTransforms"] = max_concurrent
    if invocation_timeout_s is not None:
        if not 1 <= invocation_timeout_s <= INVOCATION_TIMEOUT_MAX_S:
            raise ConfigError(f"invocation timeout must be 1-{INVOCATION_TIMEOUT_MAX_S} s, got {invocation_timeout_s}")
        request["ModelClientConfig"] = {"InvocationsTimeoutInSeconds": invocation_timeout_s}
    return request


@dataclass(frozen=True)
class AsyncOptions:
    """Asynchronous inference: requests name a video in S3 (up to 1 GB); answers are written to S3.

    Attributes:
        output_uri: where answers go (``<output_uri>/<inference id>.out``).
        failure_uri: where error answers go (None: beside the answers).
        max_concurrent: requests per instance at once (None: SageMaker chooses).
    """

    output_uri: str
    failure_uri: str | None = None
    max_concurrent: int | None = None


def endpoint_config_request(
    name: str, model_name: str, instance_type: str, instance_count: int = 1, asynchronous: AsyncOptions | None = None
) -> dict[str, Any]:
    """Build the CreateEndpointConfig request: one variant of ``model_name``; asynchronous when ``asynchronous``."""
    validate_job_name(name)
    if instance_count < 1:
        raise ConfigError(f"instance count must be at least 1, got {instance_count}")
    variant = {
        "VariantName": VARIANT_NAME,
        "ModelName": model_name,
        "InitialInstanceCount": instance_count,
        "InstanceType": instance_type,
        "InitialVariantWeight": 1.0,
    }
    request: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": [variant]}
    if asynchronous is not None:
        output = {"S3OutputPath": asynchronous.output_uri}
        for uri in (asynchronous.output_uri, asynchronous.failure_uri):
            if uri:
                parse_s3_uri(uri)
        if asynchronous.failure_uri:
            output["S3FailurePath"] = asynchronous.failure_uri
        config: dict[str, Any] = {"OutputConfig": output}
        if asynchronous.max_concurrent is not None:
            if asynchronous.max_concurrent < 1:
                raise ConfigError(f"max concurrent invocations must be at least 1, got {asynchronous.max_concurrent}")
            config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": asynchronous.max_concurrent}
        request["AsyncInferenceConfig"] = config
    return request


def endpoint_request(name: str, config_name: str) -> dict[str, Any]:
    """Build the CreateEndpoint request."""
    validate_job_name(name)
    return {"EndpointName": name, "EndpointConfigName": config_name}


def list_objects(s3, uri: str) -> list[tuple[str, int]]:
    """Every object under the ``s3://`` prefix ``uri``: ``(key, size in bytes)``."""
    bucket, prefix = parse_s3_uri(uri)
    objects: list[tuple[str, int]] = []
    with aws_errors(f"listing {uri}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objects += [(item["Key"], item["Size"]) for item in page.get("Contents", [])]
    return objects


def upload_manifest(s3, staging: str, input_uri: str, entries: Sequence[str]) -> str:
    """Upload a transform manifest under the ``s3://`` prefix ``staging``; return its URI."""
    bucket, key = parse_s3_uri(staging)
    key = f"{key.rstrip('/')}/{MANIFEST_FILE}".lstrip("/")
    with aws_errors(f"uploading s3://{bucket}/{key}"):
        s3.put_object(Bucket=bucket, Key=key, Body=manifest_body(input_uri, entries))
    return f"s3://{bucket}/{key}"


def create_model(client, request: Mapping[str, Any]) -> str:
    """Create the model of ``request`` (``model_request``); return its ARN."""
    with aws_errors(f"creating model {request['ModelName']}"):
        return client.create_model(**request)["ModelArn"]


def create_endpoint_config(client, request: Mapping[str, Any]) -> str:
    """Create the endpoint configuration of ``request`` (``endpoint_config_request``); return its ARN."""
    with aws_errors(f"creating endpoint configuration {request['EndpointConfigName']}"):
        return client.create_endpoint_config(**request)["EndpointConfigArn"]


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
    success: str = "Completed"
    failures: frozenset[str] = frozenset({"Failed", "Stopped"})


def _job_kind(noun: str, reason_keys: tuple[str, ...] = ("FailureReason",)) -> _Kind:
    """The calls and keys of a job kind: ``Training`` -> ``create_training_job``, ``TrainingJobName``, ..."""
    prefix = f"{noun}Job"
    return _Kind(f"create_{noun.lower()}_job", f"describe_{noun.lower()}_job", f"{prefix}Name", f"{prefix}Status",
                 f"{prefix}Arn", reason_keys)  # fmt: skip


KINDS = {
    "processing": _job_kind("Processing", ("FailureReason", "ExitMessage")),
    "training": _job_kind("Training"),
    "transform": _job_kind("Transform"),
    "endpoint": _Kind(
        create="create_endpoint",
        describe="describe_endpoint",
        name_key="EndpointName",
        status_key="EndpointStatus",
        arn_key="EndpointArn",
        reason_keys=("FailureReason",),
        success="InService",
        failures=frozenset({"Failed", "OutOfService", "UpdateRollbackFailed"}),
    ),
}


def submit_job(client, kind: str, request: Mapping[str, Any]) -> str:
    """Create the job (or endpoint) described by ``request``, ``kind`` a key of ``KINDS``; return its ARN."""
    spec = KINDS[kind]
    name = request[spec.name_key]
    with aws_errors(f"creating {kind} job {name}"):
        response = getattr(client, spec.create)(**request)
    logger.info("submitted %s job %s", kind, name)
    return response[spec.arn_key]


def describe_job(client, kind: str, name: str) -> dict[str, Any]:
    """The current Describe* response for the job (or endpoint) ``name`` of ``kind``."""
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
        The final description of a Completed job (an InService endpoint).

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
        spec = KINDS[kind]
        status = description[spec.status_key]
        if status == spec.success or status in spec.failures:
            return _finished(kind, name, status, description)
        if time.monotonic() + poll_s > deadline:
            raise JobFailedError(f"{kind} job {name} still {status} after {timeout_s:.0f} s; it keeps running")
        sleep(poll_s)


def _finished(kind: str, name: str, status: str, description: Mapping[str, Any]) -> dict[str, Any]:
    if status == KINDS[kind].success:
        return dict(description)
    reasons = [str(description[key]) for key in KINDS[kind].reason_keys if description.get(key)]
    detail = "; ".join(reasons) or "no reason given"
    raise JobFailedError(f"{kind} job {name} {status}: {' '.join(detail.split())} (see its CloudWatch logs)")


def wait_timeout(request: Mapping[str, Any]) -> int:
    """How long ``--wait`` waits at most: the job's own time limit plus start-up and upload time.

    A transform job has no limit of its own (``TRANSFORM_WAIT_S``); an endpoint waits ``ENDPOINT_WAIT_S``.
    """
    if "TransformJobName" in request:
        return TRANSFORM_WAIT_S
    if "EndpointName" in request:
        return ENDPOINT_WAIT_S
    condition = request["StoppingCondition"]
    return condition.get("MaxWaitTimeInSeconds", condition["MaxRuntimeInSeconds"]) + WAIT_MARGIN_S
