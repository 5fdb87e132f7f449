"""The SageMaker container contract: every /opt/ml path and SM_* name, declared once.

The CLI resolves every directory and variable of a job through this module and passes plain values down; besides
the CLI, only the modules that speak SageMaker's own terms import it: ``launch`` (the LocalPaths of a job request) and
``distribute`` (``Hosts``, and ``write_failure`` for a host that gives up on the others). Readers take the root
(``/opt/ml``) and the environment as parameters, so tests build a fake tree under a temporary directory; nothing here
runs at import time.

Pages that define these files:
- Training: https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
  and https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html
- Processing: https://docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html
- Inference: https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html
  and https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-batch-code.html
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from video3dcnn.errors import ContractError

logger = logging.getLogger(__name__)

OPT_ML = Path("/opt/ml")
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"  # the toolkit's own override of /opt/ml; we honour it too

# Processing (no toolkit, no SM_* variables: only config files and paths).
PROCESSING_CONFIG_DIR = "config"
PROCESSING_JOB_CONFIG = "processingjobconfig.json"
RESOURCE_CONFIG = "resourceconfig.json"
PROCESSING_INPUT = "processing/input_data"  # the seed blog's LocalPath names
PROCESSING_OUTPUT = "processing/processed_data"
MESSAGE_FILE = "output/message"  # first 1 KB becomes ExitMessage of DescribeProcessingJob

# Training (sagemaker-training toolkit).
INPUT_CONFIG_DIR = "input/config"
HYPERPARAMETERS_FILE = "hyperparameters.json"
INPUT_DATA_CONFIG = "inputdataconfig.json"
INPUT_DATA_DIR = "input/data"
MODEL_DIR = "model"
OUTPUT_DATA_DIR = "output/data"
FAILURE_FILE = "output/failure"  # first 1024 chars become FailureReason
CHECKPOINT_DIR = "checkpoints"  # default CheckpointConfig.LocalPath
TRAINING_CHANNEL = "training"
VALIDATION_CHANNEL = "validation"

SM_MODEL_DIR = "SM_MODEL_DIR"
SM_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
SM_CHANNEL_PREFIX = "SM_CHANNEL_"
SM_HPS = "SM_HPS"
SM_HOSTS = "SM_HOSTS"
SM_CURRENT_HOST = "SM_CURRENT_HOST"
SM_NUM_GPUS = "SM_NUM_GPUS"
CHECKPOINT_DIR_ENV = "VIDEO3DCNN_CHECKPOINT_DIR"  # SageMaker has no SM_* name for checkpoints
COORDINATOR_ENV = "VIDEO3DCNN_COORDINATOR"  # multi-host jobs: HOST:PORT of the chief's JAX coordinator

# Inference (`docker run <image> serve`): the model archive is extracted into /opt/ml/model before start.
SERVING_PORT = 8080
BIND_TO_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"  # set when several containers share one host
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"  # the names AWS's own inference containers read
TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"  # set by Batch Transform when the job gives MaxPayloadInMB
TOP_K_ENV = "VIDEO3DCNN_TOP_K"  # classes listed per answer; a CreateModel Environment entry
DEFAULT_TIMEOUT_S = 60  # a real-time invocation must answer within 60 s
DEFAULT_MAX_PAYLOAD_MB = 1024  # asynchronous inference takes payloads up to 1 GB
DEFAULT_TOP_K = 5

FAILURE_MESSAGE_LIMIT = 1024


def opt_ml_root(environ: Mapping[str, str] = os.environ) -> Path:
    """Return the /opt/ml root, honouring ``SAGEMAKER_BASE_DIR`` like the toolkit does."""
    return Path(environ.get(BASE_DIR_ENV) or OPT_ML)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_resource_config(config_dir: Path) -> dict | None:
    """Read ``resourceconfig.json`` (``current_host``, ``hosts``) from ``config_dir``; None when absent."""
    path = config_dir / RESOURCE_CONFIG
    if not path.is_file():
        return None
    config = _read_json(path)
    if not isinstance(config.get("current_host"), str) or not isinstance(config.get("hosts"), list):
        raise ContractError(f"{path} must hold 'current_host' (a string) and 'hosts' (a list)")
    return config


@dataclass(frozen=True)
class Hosts:
    """Who this instance is among the instances of one job."""

    current: str
    all: tuple[str, ...]

    @property
    def is_chief(self) -> bool:
        """The first host in sorted order writes shared artefacts (the toolkit's ``master_hostname``)."""
        return self.current == sorted(self.all)[0]

    @property
    def count(self) -> int:
        return len(self.all)


def hosts_from(resource_config: dict | None) -> Hosts:
    """Hosts from a resource config, else this machine alone under its hostname."""
    if resource_config is None:
        name = socket.gethostname() or "localhost"
        return Hosts(current=name, all=(name,))
    return Hosts(current=resource_config["current_host"], all=tuple(resource_config["hosts"]))


@dataclass(frozen=True)
class ProcessingEnv:
    """What a Processing job tells the container, read once.

    Attributes:
        in_job: True when /opt/ml/config/processingjobconfig.json or /opt/ml/processing exists.
        input_dir: default input directory (``/opt/ml/processing/input_data``).
        output_dir: default output directory (``/opt/ml/processing/processed_data``).
        hosts: this instance and its peers (from resourceconfig.json, else the hostname).
        message_path: where a failure reason goes when in a job, else None.
        input_distribution: ``S3DataDistributionType`` of the input whose LocalPath is ``input_dir``, if known.
    """

    in_job: bool
    input_dir: Path
    output_dir: Path
    hosts: Hosts
    message_path: Path | None
    input_distribution: str | None = None


def processing_env(root: Path | None = None) -> ProcessingEnv:
    """Read the processing contract under ``root`` (default: ``$SAGEMAKER_BASE_DIR`` or /opt/ml)."""
    root = root or opt_ml_root()
    config_dir = root / PROCESSING_CONFIG_DIR
    job_config_path = config_dir / PROCESSING_JOB_CONFIG
    in_job = job_config_path.is_file() or (root / "processing").is_dir()
    input_dir = root / PROCESSING_INPUT
    distribution = None
    if job_config_path.is_file():
        for item in _read_json(job_config_path).get("ProcessingInputs") or []:
            s3_input = item.get("S3Input") or {}
            if s3_input.get("LocalPath") and Path(s3_input["LocalPath"]) == Path("/opt/ml") / PROCESSING_INPUT:
                distribution = s3_input.get("S3DataDistributionType")
    return ProcessingEnv(
        in_job=in_job,
        input_dir=input_dir,
        output_dir=root / PROCESSING_OUTPUT,
        hosts=hosts_from(read_resource_config(config_dir)),
        message_path=root / MESSAGE_FILE if in_job else None,
        input_distribution=distribution,
    )


@dataclass(frozen=True)
class TrainingEnv:
    """What a Training job tells the container, read once.

    Prefers the ``SM_*`` variables the toolkit exports and falls back to the files under the root, so the same code
    runs under ``train`` (the toolkit), plain ``docker run`` and natively.

    Attributes:
        in_job: True when ``SM_MODEL_DIR`` is set or ``<root>/input/config`` exists.
        model_dir, output_data_dir, checkpoint_dir: where artefacts go.
        channels: channel name -> directory.
        hyperparameters: raw hyperparameters, values as the JSON strings SageMaker stores (decoded by config).
        hosts: this instance and its peers.
        num_gpus: from ``SM_NUM_GPUS`` (None when unknown).
        failure_path: where a failure reason goes when in a job, else None.
        coordinator: ``VIDEO3DCNN_COORDINATOR``, ``HOST:PORT`` of the chief's coordinator (None: the default).
    """

    in_job: bool
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    channels: dict[str, Path] = field(default_factory=dict)
    hyperparameters: dict[str, str] = field(default_factory=dict)
    hosts: Hosts = field(default_factory=lambda: hosts_from(None))
    num_gpus: int | None = None
    failure_path: Path | None = None
    coordinator: str | None = None


def _channels(environ: Mapping[str, str], root: Path) -> dict[str, Path]:
    channels = {
        key[len(SM_CHANNEL_PREFIX) :].lower(): Path(value)
        for key, value in environ.items()
        if key.startswith(SM_CHANNEL_PREFIX)
    }
    data_dir = root / INPUT_DATA_DIR
    if not channels and data_dir.is_dir():
        channels = {entry.name: entry for entry in sorted(data_dir.iterdir()) if entry.is_dir()}
    return channels


def _raw_hyperparameters(environ: Mapping[str, str], config_dir: Path) -> dict[str, str]:
    """Hyperparameters as strings: the file's JSON strings, or SM_HPS re-encoded the same way."""
    path = config_dir / HYPERPARAMETERS_FILE
    if path.is_file():
        raw = _read_json(path)
    elif environ.get(SM_HPS):
        raw = {key: json.dumps(value) for key, value in json.loads(environ[SM_HPS]).items()}
    else:
        return {}
    if not isinstance(raw, dict):
        raise ContractError(f"{path} must hold a JSON object of hyperparameters")
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}


def _hosts_from_env(environ: Mapping[str, str], config_dir: Path) -> Hosts:
    if environ.get(SM_HOSTS) and environ.get(SM_CURRENT_HOST):
        return Hosts(current=environ[SM_CURRENT_HOST], all=tuple(json.loads(environ[SM_HOSTS])))
    return hosts_from(read_resource_config(config_dir))


def training_env(environ: Mapping[str, str] = os.environ, root: Path | None = None) -> TrainingEnv:
    """Read the training contract from ``environ`` and the files under ``root``."""
    root = root or opt_ml_root(environ)
    config_dir = root / INPUT_CONFIG_DIR
    in_job = bool(environ.get(SM_MODEL_DIR)) or config_dir.is_dir()
    gpus = environ.get(SM_NUM_GPUS)
    coordinator = environ.get(COORDINATOR_ENV) or None
    if coordinator and not coordinator.rpartition(":")[2].isdigit():
        raise ContractError(f"{COORDINATOR_ENV}={coordinator!r} is not HOST:PORT")
    return TrainingEnv(
        in_job=in_job,
        model_dir=Path(environ.get(SM_MODEL_DIR) or root / MODEL_DIR),
        output_data_dir=Path(environ.get(SM_OUTPUT_DATA_DIR) or root / OUTPUT_DATA_DIR),
        checkpoint_dir=Path(environ.get(CHECKPOINT_DIR_ENV) or root / CHECKPOINT_DIR),
        channels=_channels(environ, root),
        hyperparameters=_raw_hyperparameters(environ, config_dir),
        hosts=_hosts_from_env(environ, config_dir),
        num_gpus=int(gpus) if gpus and gpus.isdigit() else None,
        failure_path=root / FAILURE_FILE if in_job else None,
        coordinator=coordinator,
    )


@dataclass(frozen=True)
class ServingEnv:
    """What an inference container is told, read once.

    Attributes:
        model_dir: the extracted model archive (``/opt/ml/model``).
        port: where to listen (``SAGEMAKER_BIND_TO_PORT``, else 8080).
        workers: server processes, each with its own copy of the model (``SAGEMAKER_MODEL_SERVER_WORKERS``, else
            one per usable core).
        timeout_s: a worker silent for this long is restarted (``SAGEMAKER_MODEL_SERVER_TIMEOUT``, else 60).
        max_payload_mb: the largest request body accepted (``SAGEMAKER_MAX_PAYLOAD_IN_MB``, else 1024).
        top_k: how many ranked classes an answer lists (``VIDEO3DCNN_TOP_K``, else 5; at most the class count).
    """

    model_dir: Path
    port: int = SERVING_PORT
    workers: int = 1
    timeout_s: int = DEFAULT_TIMEOUT_S
    max_payload_mb: int = DEFAULT_MAX_PAYLOAD_MB
    top_k: int = DEFAULT_TOP_K


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ContractError(f"{name}={raw!r} must be a whole number of at least 1")
    return int(raw)


def serving_env(environ: Mapping[str, str] = os.environ, root: Path | None = None) -> ServingEnv:
    """Read the inference contract from ``environ`` (model under ``root``, default ``$SAGEMAKER_BASE_DIR`` or /opt/ml).

    Raises:
        ContractError: a variable that must be a positive whole number is not.
    """
    root = root or opt_ml_root(environ)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return ServingEnv(
        model_dir=root / MODEL_DIR,
        port=_positive_int(environ, BIND_TO_PORT_ENV, SERVING_PORT),
        workers=_positive_int(environ, WORKERS_ENV, cores),
        timeout_s=_positive_int(environ, TIMEOUT_ENV, DEFAULT_TIMEOUT_S),
        max_payload_mb=_positive_int(environ, MAX_PAYLOAD_ENV, DEFAULT_MAX_PAYLOAD_MB),
        top_k=_positive_int(environ, TOP_K_ENV, DEFAULT_TOP_K),
    )


def write_failure(path: Path | None, message: str) -> None:
    """Write a one-line reason (truncated to what SageMaker keeps) to ``path``; no-op when ``path`` is None.

    The reason comes first because SageMaker shows only the first 1024 characters. Errors writing the file are logged,
    never raised: failure reporting must not mask the original failure.
    """
    if path is None:
        return
    line = " ".join(message.split())[:FAILURE_MESSAGE_LIMIT]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n", encoding="utf-8")
    except OSError as exc:
        logger.warning("could not write failure reason to %s: %s", path, exc)
