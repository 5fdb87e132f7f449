"""``video3dcnn process``: labelled videos -> uint8 clip shards; the processing image's entrypoint.

Inside a SageMaker Processing job the input and output default to the seed's paths
(``/opt/ml/processing/input_data``, ``/opt/ml/processing/processed_data``), every option can come as
ContainerArguments, shard and manifest names carry the host from ``/opt/ml/config/resourceconfig.json``, and a failure
reason goes to ``/opt/ml/output/message``
(https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
from pathlib import Path

from video3dcnn.config import as_dict
from video3dcnn.contract import ProcessingEnv, processing_env
from video3dcnn.discovery import LAYOUTS_HELP
from video3dcnn.errors import ConfigError, DataError, ToolkitError
from video3dcnn.process_options import ProcessOptions, add_arguments, from_arguments
from video3dcnn.signals import handling_signal

logger = logging.getLogger(__name__)

SHARDED_BY_KEY = "ShardedByS3Key"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``process`` with ``--input``, ``--output`` and the flags of every ``ProcessOptions`` field."""
    parser = subparsers.add_parser(
        "process",
        help="decode labelled videos into uint8 clip shards for training",
        description=(
            "Decode the videos under --input (class folders, UCF101 names or a --manifest CSV) into clips and write "
            "shards, classes.txt, preview.png and manifest-<host>.json to --output."
        ),
    )
    parser.add_argument(
        "--input", type=Path, default=None, help="video directory (default in a job: /opt/ml/processing/input_data)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="output directory (default in a job: /opt/ml/processing/processed_data)",
    )
    add_arguments(parser)
    parser.set_defaults(run=run, failure_paths=failure_paths)


def failure_paths(args: argparse.Namespace) -> list[Path]:
    """``/opt/ml/output/message`` inside a Processing job, nothing elsewhere."""
    try:
        env = processing_env()
    except ToolkitError:
        return []
    return [env.message_path] if env.message_path else []


def _directories(args: argparse.Namespace, env: ProcessingEnv) -> tuple[Path, Path]:
    """Input and output directories: the flags, else the job's paths; the input must exist."""
    if not env.in_job and (args.input is None or args.output is None):
        raise ConfigError("--input and --output are required outside a SageMaker Processing job")
    input_dir, output_dir = args.input or env.input_dir, args.output or env.output_dir
    if not input_dir.is_dir():
        hint = " (check the ProcessingInput's S3 URI and that its LocalPath is this directory)" if env.in_job else ""
        raise DataError(f"input directory {input_dir} does not exist or is not a directory{hint}; {LAYOUTS_HELP}")
    return input_dir, output_dir


def resolve_instances(options: ProcessOptions, env: ProcessingEnv) -> ProcessOptions:
    """Fit the options to the job's instances.

    A ShardedByS3Key input gives every instance different videos, so without ``--classes`` their class lists could
    disagree: refused. A replicated input read by several instances is split into parts, one per instance, by path
    hash unless ``--num-parts``/``--part-index`` say otherwise.
    """
    hosts = env.hosts
    if hosts.count <= 1:
        return options
    if env.input_distribution == SHARDED_BY_KEY:
        if not options.classes:
            raise ConfigError(
                f"the input is {SHARDED_BY_KEY} across {hosts.count} instances, so they cannot agree on a class list: "
                "pass --classes FILE (one class per line), e.g. from a second, FullyReplicated ProcessingInput"
            )
        return options
    if options.num_parts is None:
        index = sorted(hosts.all).index(hosts.current)
        logger.info("replicated input on %d instances: %s takes part %d", hosts.count, hosts.current, index)
        return dataclasses.replace(options, num_parts=hosts.count, part_index=index)
    return options


def _stop(signum: int, frame: object) -> None:
    """SIGTERM (``docker stop``, a stopped SageMaker job) ends the run as Ctrl-C does: what it wrote is removed."""
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def run(args: argparse.Namespace) -> int:
    """Resolve the options (defaults, then flags), fit them to the job's instances and process."""
    from video3dcnn.processing import process

    env = processing_env()
    if env.message_path is not None:  # the reason of an earlier failure is no reason of this run's
        env.message_path.unlink(missing_ok=True)
    options = from_arguments(args)
    input_dir, output_dir = _directories(args, env)
    options = resolve_instances(options, env)
    host = writer_name(env.hosts.current, env.hosts.count, options)
    logger.info("process %s -> %s as %s with %s", input_dir, output_dir, host, as_dict(options))
    with handling_signal(signal.SIGTERM, _stop):
        process(input_dir, output_dir, options, host=host, hosts=env.hosts.all)
    return 0


def writer_name(host: str, hosts: int, options: ProcessOptions) -> str:
    """The name this run's shards and manifest carry: the host, plus ``-part<I>`` when one host runs a part of a
    ``--num-parts`` split, so that the parts (run one after another natively, in Compose, or as single-instance jobs
    writing one S3 prefix) do not replace each other's output. The instances of one job already have unique names."""
    if options.num_parts and options.num_parts > 1 and hosts <= 1:
        return f"{host}-part{options.part_index}"
    return host
