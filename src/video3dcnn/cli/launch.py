"""``video3dcnn launch processing|training|transform|endpoint``: run the images on SageMaker (boto3, extra ``aws``).

Prints the job (or endpoint) name on stdout; with ``--wait`` also every status change, then the result (the model
artifact of a training job, the output prefix of a processing or transform job). ``transform`` and ``endpoint`` first
create a SageMaker model: the training image serving a ``model.tar.gz``. Requests are logged at DEBUG
(``--log-level DEBUG``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from video3dcnn.contract import TRAINING_CHANNEL, VALIDATION_CHANNEL
from video3dcnn.errors import ConfigError
from video3dcnn.process_options import add_arguments, from_arguments

logger = logging.getLogger(__name__)

DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_HOSTING_INSTANCE_TYPE = "ml.c5.xlarge"  # decoding videos is what a prediction spends its CPU on
DEFAULT_POLL_S = 30.0
MAX_POLL_S = 600.0
CLASSES_FLAG = "--classes"  # the process option that takes a class list file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "launch",
        help="run the images on SageMaker: processing, training, batch transform or an endpoint (boto3: extra 'aws')",
        description="Submit a SageMaker job, or create an endpoint, with boto3. Credentials and region come from the "
        "usual AWS chain.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    _add_processing_parser(kinds)
    _add_training_parser(kinds)
    _add_transform_parser(kinds)
    _add_endpoint_parser(kinds)


def _add_processing_parser(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "processing",
        help="videos in S3 -> clip shards in S3 (the processing image)",
        description="Everything after '--' is passed to 'video3dcnn process' in the container, "
        "e.g. -- --frames 16 --size 112x112.",
    )
    parser.add_argument("--input", required=True, metavar="S3_URI", help="s3:// prefix holding <Class>/<video> folders")
    parser.add_argument("--output", required=True, metavar="S3_URI", help="s3:// prefix the shards are written to")
    parser.add_argument(
        "--classes",
        type=Path,
        metavar="FILE",
        help="local class list (one name per line), uploaded and given to every instance; "
        "default with --instance-count > 1: the class folders found under --input",
    )
    _add_job_options(parser, "video3dcnn-process")
    parser.add_argument("process_args", nargs=argparse.REMAINDER, help="-- then options for 'video3dcnn process'")
    parser.set_defaults(run=run_processing)


def _add_training_parser(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser("training", help="clip shards in S3 -> model.tar.gz in S3 (the training image)")
    parser.add_argument("--training", required=True, metavar="S3_URI", help="s3:// prefix of the processed shards")
    parser.add_argument("--validation", metavar="S3_URI", help="s3:// prefix of separate validation shards")
    parser.add_argument("--output", required=True, metavar="S3_URI", help="S3OutputPath for model.tar.gz")
    parser.add_argument(
        "--hyperparameter",
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training option, e.g. --hp epochs=20 --hp learning_rate=0.001 (repeatable; JSON-encoded for you)",
    )
    parser.add_argument("--checkpoint-s3-uri", metavar="S3_URI", help="sync /opt/ml/checkpoints with this prefix")
    parser.add_argument("--spot", action="store_true", help="use managed spot instances (checkpoints recommended)")
    parser.add_argument(
        "--max-wait",
        type=int,
        metavar="SECONDS",
        help="spot: longest wait including interruptions, above --max-runtime (default: twice --max-runtime)",
    )
    _add_job_options(parser, "video3dcnn-train")
    parser.set_defaults(run=run_training)


def _add_transform_parser(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "transform",
        help="videos in S3 -> one <video>.out prediction each in S3 (Batch Transform with the training image)",
        description="Create a model (the training image serving --model-data) and a Batch Transform job that sends "
        "every video under --input as one request. Each answer lands in --output as <video>.out: one CSV line "
        "predicted,probability[,top2,top2_probability...],clips, or JSON with --accept application/json.",
    )
    parser.add_argument("--input", required=True, metavar="S3_URI", help="s3:// prefix of the videos (any folders)")
    parser.add_argument("--output", required=True, metavar="S3_URI", help="s3:// prefix the .out files go to")
    parser.add_argument("--content-type", help="sent with every video (default: from the file extensions)")
    parser.add_argument("--accept", default="text/csv", help="text/csv (default) or application/json")
    parser.add_argument("--max-payload", type=int, metavar="MB", help="MaxPayloadInMB (default: the largest video)")
    parser.add_argument("--max-concurrent", type=int, metavar="N",
                        help="requests per instance at once (default: the container's workers, one per vCPU)")
    parser.add_argument("--invocation-timeout", type=int, metavar="SECONDS",
                        help="how long one video may take (default: SageMaker's 600)")  # fmt: skip
    _add_hosting_options(parser, "video3dcnn-transform", "--job-name")
    parser.set_defaults(run=run_transform)


def _add_endpoint_parser(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "endpoint",
        help="a real-time or asynchronous endpoint of the training image serving a model.tar.gz",
        description="Create a model (the training image serving --model-data), an endpoint configuration and an "
        "endpoint of the same name. Real-time requests carry up to 6 MB; with --async-output the endpoint is "
        "asynchronous: requests name a video in S3 (up to 1 GB) and answers are written to --async-output.",
    )
    parser.add_argument("--async-output", metavar="S3_URI", help="asynchronous inference: where answers are written")
    parser.add_argument("--async-failure", metavar="S3_URI", help="asynchronous inference: where errors are written")
    parser.add_argument("--max-concurrent-invocations", type=int, metavar="N",
                        help="asynchronous inference: requests per instance at once (default: SageMaker's choice)")
    _add_hosting_options(parser, "video3dcnn-endpoint", "--endpoint-name")
    parser.set_defaults(run=run_endpoint)


def _add_hosting_options(parser: argparse.ArgumentParser, default_name: str, name_flag: str) -> None:
    parser.add_argument("--model-data", required=True, metavar="S3_URI", help="model.tar.gz of a training job")
    parser.add_argument("--top-k", type=int, metavar="K", help="classes ranked in each answer (default: 5)")
    group = _add_common_options(parser, default_name, name_flag, DEFAULT_HOSTING_INSTANCE_TYPE)
    group.add_argument("--instance-count", type=int, default=1, help="(default: 1)")


def _add_job_options(parser: argparse.ArgumentParser, default_name: str) -> None:
    group = _add_common_options(parser, default_name, "--job-name", DEFAULT_INSTANCE_TYPE)
    group.add_argument("--instance-count", type=int, default=1, help="(default: 1)")
    group.add_argument("--volume-size", type=int, default=30, metavar="GB", help="EBS GB per instance (default: 30)")
    group.add_argument("--max-runtime", type=int, default=86400, metavar="SECONDS", help="(default: 86400)")


def _add_common_options(
    parser: argparse.ArgumentParser, default_name: str, name_flag: str, instance_type: str
) -> argparse._ArgumentGroup:
    parser.set_defaults(default_job_name=default_name)
    group = parser.add_argument_group("job")
    group.add_argument("--image", required=True, metavar="URI", help="image URI (build_and_push.sh prints it)")
    group.add_argument("--role", required=True, metavar="ARN", help="IAM role ARN SageMaker assumes for the job")
    group.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the AWS config)")
    group.add_argument(name_flag, dest="job_name", help=f"name (default: {default_name}-<UTC time>-<random>)")
    group.add_argument("--instance-type", default=instance_type, help=f"(default: {instance_type})")
    group.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="container variable, repeatable")
    group.add_argument("--wait", action="store_true", help="wait for the end, printing each status change")
    group.add_argument(
        "--poll-interval",
        type=float,
        default=DEFAULT_POLL_S,
        metavar="SECONDS",
        help=f"--wait polling interval (default: {DEFAULT_POLL_S:.0f})",
    )
    return group


def parse_key_values(items: Sequence[str], option: str) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options into a dict; raise ConfigError naming ``option`` on a malformed item."""
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"invalid {option} {item!r}: use KEY=VALUE")
        result[key.strip()] = value
    return result


def _job_name(args: argparse.Namespace) -> str:
    from video3dcnn.launch import make_job_name

    if not 0 < args.poll_interval <= MAX_POLL_S:
        raise ConfigError(f"--poll-interval must be between 0 and {MAX_POLL_S:.0f} seconds")
    return args.job_name or make_job_name(args.default_job_name)


def _job_spec(args: argparse.Namespace):
    from video3dcnn.launch import JobSpec

    return JobSpec(
        name=_job_name(args),
        role_arn=args.role,
        image_uri=args.image,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        volume_size_gb=args.volume_size,
        max_runtime_s=args.max_runtime,
        environment=parse_key_values(args.env, "--env"),
    )


def _process_arguments(args: argparse.Namespace) -> list[str]:
    arguments = list(args.process_args)
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    given = {item.split("=", 1)[0] for item in arguments if item.startswith("--")}
    if CLASSES_FLAG in given:
        raise ConfigError("give --classes FILE to launch (before '--'): it uploads the file for the job")
    if given & {"--input", "--output"}:
        raise ConfigError("give --input and --output to launch (before '--') as s3:// URIs, not to process")
    check_process_arguments(arguments)
    return arguments


def check_process_arguments(arguments: Sequence[str]) -> None:
    """Refuse options ``video3dcnn process`` would refuse, before a job starts (``process_options`` needs no OpenCV, so
    this check runs with only the ``aws`` extra installed).

    Raises:
        ConfigError: an unknown option, a missing value, a value that does not parse or contradictory options.
    """
    parser = argparse.ArgumentParser(prog="video3dcnn process", add_help=False, exit_on_error=False)
    add_arguments(parser)
    try:
        namespace, unknown = parser.parse_known_args(list(arguments))
    except argparse.ArgumentError as exc:
        raise ConfigError(f"process option {exc}") from None
    if unknown:
        raise ConfigError(f"unknown process option(s) {' '.join(unknown)}; see 'video3dcnn process --help'")
    from_arguments(namespace)


def _upload_class_list(args: argparse.Namespace, job_name: str) -> str | None:
    """Upload the class list the instances must share; None when one instance finds the classes itself."""
    from video3dcnn.launch import aws_client, list_class_folders, staging_uri, upload_classes
    from video3dcnn.shards import read_classes

    if args.classes is None and args.instance_count == 1:
        return None
    s3 = aws_client("s3", args.region)
    # ShardedByS3Key gives each host a subset of the videos: all must agree on one label order.
    classes = read_classes(args.classes) if args.classes is not None else list_class_folders(s3, args.input)
    uri = upload_classes(s3, staging_uri(args.output, job_name), classes)
    logger.info("class list (%d classes) uploaded to %s", len(classes), uri)
    return uri


def run_processing(args: argparse.Namespace) -> int:
    """Submit (and with ``--wait`` follow) a processing job."""
    from video3dcnn.launch import CLASSES_FILE, CLASSES_LOCAL_DIR, processing_request

    job = _job_spec(args)
    arguments = _process_arguments(args)
    classes_uri = _upload_class_list(args, job.name)
    if classes_uri:
        arguments += [CLASSES_FLAG, str(CLASSES_LOCAL_DIR / CLASSES_FILE)]
    request = processing_request(job, args.input, args.output, arguments, classes_uri)
    if _submit(args, "processing", request) is not None:
        print(f"output: {args.output}", flush=True)
    return 0


def run_training(args: argparse.Namespace) -> int:
    """Submit (and with ``--wait`` follow) a training job."""
    from video3dcnn.hyperparameters import resolve_config
    from video3dcnn.launch import SpotOptions, encode_hyperparameters, training_request

    if args.max_wait is not None and not args.spot:
        raise ConfigError("--max-wait only applies to managed spot training: add --spot")
    job = _job_spec(args)
    channels = {TRAINING_CHANNEL: args.training}
    if args.validation:
        channels[VALIDATION_CHANNEL] = args.validation
    spot = SpotOptions(args.max_wait or 2 * job.max_runtime_s) if args.spot else None
    raw_hyperparameters = parse_key_values(args.hyperparameter, "--hyperparameter")
    resolve_config({}, raw_hyperparameters)  # unknown names and bad values fail here, not minutes into the job
    hyperparameters = encode_hyperparameters(raw_hyperparameters)
    request = training_request(job, channels, args.output, hyperparameters, args.checkpoint_s3_uri, spot)
    if spot is not None and not args.checkpoint_s3_uri:
        logger.warning("spot training without --checkpoint-s3-uri: an interrupted job restarts from epoch 0")
    description = _submit(args, "training", request)
    if description is not None:
        print(f"model: {description['ModelArtifacts']['S3ModelArtifacts']}", flush=True)
    return 0


def _model_spec(args: argparse.Namespace, name: str):
    from video3dcnn.launch import ModelSpec, model_environment

    environment = model_environment(parse_key_values(args.env, "--env"), args.top_k)
    return ModelSpec(name, args.role, args.image, args.model_data, environment)


def run_transform(args: argparse.Namespace) -> int:
    """Create the model and submit (and with ``--wait`` follow) a Batch Transform job over the videos under --input."""
    import dataclasses

    from video3dcnn.launch import aws_client, create_model, folder_uri, list_objects, model_request
    from video3dcnn.launch import plan_transform_input, staging_uri, transform_request, upload_manifest

    name = _job_name(args)
    model = _model_spec(args, name)
    input_uri = folder_uri(args.input)
    s3 = aws_client("s3", args.region)
    data, entries = plan_transform_input(input_uri, list_objects(s3, input_uri), args.content_type)
    if args.max_payload is not None:
        if args.max_payload < data.max_payload_mb:
            raise ConfigError(
                f"--max-payload {args.max_payload} MB is below the largest video ({data.max_payload_mb} MB)"
            )
        data = dataclasses.replace(data, max_payload_mb=args.max_payload)
    request = transform_request(name, model.name, data, args.output, args.instance_type, args.instance_count,
                                args.accept, args.max_concurrent, args.invocation_timeout)  # fmt: skip
    if data.manifest:
        manifest = upload_manifest(s3, staging_uri(args.output, name), input_uri, entries)
        request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] = manifest
    logger.info("%s: content type %s, MaxPayloadInMB %d", input_uri, data.content_type, data.max_payload_mb)
    if _submit(args, "transform", request, [(create_model, model_request(model))]) is not None:
        print(f"output: {args.output}", flush=True)
    return 0


def run_endpoint(args: argparse.Namespace) -> int:
    """Create the model, an endpoint configuration and the endpoint; with ``--wait`` until it is InService."""
    from video3dcnn.launch import AsyncOptions, create_endpoint_config, create_model, endpoint_config_request
    from video3dcnn.launch import endpoint_request, model_request

    asynchronous = None
    if args.async_output:
        asynchronous = AsyncOptions(args.async_output, args.async_failure, args.max_concurrent_invocations)
    elif args.async_failure or args.max_concurrent_invocations is not None:
        raise ConfigError(
            "--async-failure and --max-concurrent-invocations apply to asynchronous endpoints: add --async-output"
        )
    name = _job_name(args)
    model = _model_spec(args, name)
    config = endpoint_config_request(name, model.name, args.instance_type, args.instance_count, asynchronous)
    prerequisites = [(create_model, model_request(model)), (create_endpoint_config, config)]
    if _submit(args, "endpoint", endpoint_request(name, name), prerequisites) is not None:
        print(f"endpoint: {name} InService", flush=True)
    return 0


def _submit(args: argparse.Namespace, kind: str, request: dict, prerequisites: Sequence[tuple] = ()) -> dict | None:
    """Create each ``(create, request)`` prerequisite, then submit ``request``; print its name and, with ``--wait``,
    follow it; return its final description."""
    from video3dcnn.launch import KINDS, aws_client, submit_job, wait_for_job, wait_timeout

    client = aws_client("sagemaker", args.region)
    for create, prerequisite in prerequisites:
        logger.debug("request: %s", json.dumps(prerequisite, indent=2))
        create(client, prerequisite)
    logger.debug("request: %s", json.dumps(request, indent=2))
    arn = submit_job(client, kind, request)
    name = request[KINDS[kind].name_key]
    logger.info("job ARN: %s", arn)
    print(name, flush=True)
    if not args.wait:
        return None
    return wait_for_job(client, kind, name, args.poll_interval, wait_timeout(request), _print_state)


def _print_state(state: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {state}", file=sys.stdout, flush=True)
