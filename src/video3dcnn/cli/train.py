"""``video3dcnn train``: train a 3D CNN on processed shards, natively or as the training image's entry point.

Inside a SageMaker training job (``docker/training/train.py`` run by the sagemaker-training toolkit) the directories
default to the job's: ``SM_CHANNEL_TRAINING``, ``SM_CHANNEL_VALIDATION`` (optional), ``SM_MODEL_DIR``,
``SM_OUTPUT_DATA_DIR`` and ``/opt/ml/checkpoints``. Hyperparameters come from ``hyperparameters.json`` and the
command line (the toolkit passes them as ``--key value`` too); flags win.

SIGTERM (``docker stop``, StopTrainingJob, a spot reclaim) stops training at the next batch boundary after a
checkpoint, with a one-line reason in /opt/ml/output/failure and exit code 143 (docs/training.md).
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from video3dcnn import contract
from video3dcnn.config import given_arguments
from video3dcnn.errors import ConfigError, ContractError
from video3dcnn.signals import StopRequest, handling_signal
from video3dcnn.hyperparameters import (
    TrainConfig,
    add_arguments,
    is_remote_uri,
    resolve_config,
    unknown_arguments_error,
)

logger = logging.getLogger(__name__)

TRAINING_CHANNELS = (contract.TRAINING_CHANNEL, "train")
NATIVE_MODEL_DIR = Path("model")
NATIVE_OUTPUT_DIR = Path("output")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a 3D CNN on the shards of 'video3dcnn process'",
        description=(
            "Train a 3D CNN on the output of 'video3dcnn process'. In a SageMaker training job the directories default "
            "to the job's (SM_CHANNEL_TRAINING, SM_CHANNEL_VALIDATION, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, "
            "/opt/ml/checkpoints); hyperparameters come from hyperparameters.json and these flags, flags winning."
        ),
        allow_abbrev=False,
        keep_unknown=True,  # run refuses an unknown hyperparameter with a ConfigError (cli.ArgumentParser)
    )
    add_arguments(parser)
    parser.set_defaults(run=run, failure_paths=failure_paths, finish=finish)


def failure_paths(args: argparse.Namespace) -> list[Path]:
    """/opt/ml/output/failure when running inside a training job."""
    env = contract.training_env()
    return [env.failure_path] if env.failure_path else []


def run(args: argparse.Namespace) -> int:
    stop = StopRequest()
    with handling_signal(signal.SIGTERM, stop):
        return _train(args, stop)


def _train(args: argparse.Namespace, stop: StopRequest) -> int:
    from video3dcnn import distribute, training
    from video3dcnn.shards import load_index

    if args.unknown_arguments:
        raise unknown_arguments_error(args.unknown_arguments)
    env = contract.training_env()
    config = resolve_config(env.hyperparameters, given_arguments(args, TrainConfig))
    logger.info("hyperparameters: %s", config.hyperparameters())
    data_dir, validation_dir = _data_dirs(config, env)
    index = load_index(data_dir)
    validation_index = load_index(validation_dir) if validation_dir else None
    _check_num_classes(config, index)
    paths = output_paths(config, env)
    placement = distribute.setup(env.hosts, env.num_gpus, config.host_timeout_seconds, env.failure_path,
                                 env.coordinator)
    # jax.distributed.initialize installs a SIGTERM handler of its own (a preemption notifier that stops nothing) in
    # place of ours; Python still believes ``stop`` is installed, so set it again unconditionally.
    signal.signal(signal.SIGTERM, stop)
    try:
        training.train(config, index, validation_index, paths, placement, stop=stop)
    except Exception as exc:
        explained = placement.explain(exc)  # a failed collective: which host went missing
        if explained is exc:
            raise
        raise explained from exc
    return 0


def finish(args: argparse.Namespace, code: int) -> None:
    """Leave a multi-host job: after the others on success, at once on failure (hosts may be gone)."""
    from video3dcnn import distribute

    distribute.finish(code)


def _existing_dir(value: str | Path, what: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise ContractError(f"{what} {path} does not exist: check the path or the channel's S3 prefix")
    return path


def _data_dirs(config: TrainConfig, env: contract.TrainingEnv) -> tuple[Path, Path | None]:
    """The training and (optional) validation data directories: options first, then the job's channels."""
    training = config.data_dir or next((env.channels[c] for c in TRAINING_CHANNELS if c in env.channels), None)
    if training is None:
        raise ContractError(
            "no training data: pass --data-dir DIR (the output of 'video3dcnn process') or give the job a "
            f"'{contract.TRAINING_CHANNEL}' channel ({contract.SM_CHANNEL_PREFIX}TRAINING); channels found: "
            f"{', '.join(env.channels) or 'none'}"
        )
    validation = config.validation_dir or env.channels.get(contract.VALIDATION_CHANNEL)
    return (
        _existing_dir(training, "training data directory"),
        _existing_dir(validation, "validation data directory") if validation else None,
    )


def _check_num_classes(config: TrainConfig, index) -> None:
    """``nclass``/``num_classes``, when given, must match the data (the seed silently dropped extra classes)."""
    if config.num_classes is not None and config.num_classes != len(index.classes):
        raise ConfigError(
            f"num_classes (nclass) is {config.num_classes} but {index.directory} has {len(index.classes)} classes "
            f"({', '.join(index.classes)}): drop the hyperparameter or process the videos with the intended classes"
        )


def _output_dir(name: str, given: str | None, job_dir: Path, native: Path, in_job: bool) -> Path:
    """An output directory: the job's own inside a job (only those are uploaded), else the option or ``native``."""
    if is_remote_uri(given):
        logger.info("ignoring %s=%s (a remote URI, as SageMaker's TensorFlow estimator passes)", name, given)
        given = None
    if in_job:
        if given and Path(given) != job_dir:
            logger.warning("ignoring %s=%s: in a training job only %s is uploaded, so outputs go there", name, given,
                           job_dir)
        return job_dir
    return Path(given) if given else native


def output_paths(config: TrainConfig, env: contract.TrainingEnv):
    """The model, output-data and checkpoint directories for this run."""
    from video3dcnn.training import TrainPaths

    checkpoint_dir = config.checkpoint_dir or (env.checkpoint_dir if env.in_job else None)
    return TrainPaths(
        model_dir=_output_dir("model_dir", config.model_dir, env.model_dir, NATIVE_MODEL_DIR, env.in_job),
        output_data_dir=_output_dir(
            "output_data_dir", config.output_data_dir, env.output_data_dir, NATIVE_OUTPUT_DIR, env.in_job
        ),
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
    )
