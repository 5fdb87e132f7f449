"""Distribution glue: the only module that imports TensorFlow itself (``tf.distribute``); the rest of training is
backend-agnostic Keras 3, and ``export`` reaches TensorFlow only through Keras' exporter.

- Several hosts (``SM_HOSTS``): ``TF_CONFIG`` is built from the host list the way AWS's TensorFlow containers do
  (every host as ``<host>:8890``, this host's position as the worker index; the first host in sorted order is
  worker 0, the chief) and training runs under ``tf.distribute.MultiWorkerMirroredStrategy``. TensorFlow backend only.
- Several GPUs on one host: ``tf.distribute.MirroredStrategy`` (TensorFlow backend) or Keras' ``DataParallel``
  distribution (JAX backend).
- Otherwise no strategy at all.

Only the chief writes the model and the outputs (``Placement.is_chief``); every host runs the same steps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass

from video3dcnn.contract import Hosts
from video3dcnn.errors import ConfigError

logger = logging.getLogger(__name__)

TF_CONFIG_ENV = "TF_CONFIG"
WORKER_PORT = 8890  # the port AWS's TensorFlow training containers use for MultiWorkerMirroredStrategy


@dataclass(frozen=True)
class Placement:
    """Where this process sits in the job.

    Attributes:
        host: this host's name (goes into checkpoint file names).
        worker_index: position among the hosts in sorted order.
        num_workers: number of hosts.
        is_chief: writes the model, outputs and checkpoints.
        strategy: ``none``, ``mirrored``, ``multi_worker_mirrored`` or ``data_parallel``.
    """

    host: str
    worker_index: int
    num_workers: int
    is_chief: bool
    strategy: str = "none"


def tf_config(hosts: Hosts, port: int = WORKER_PORT) -> dict:
    """The ``TF_CONFIG`` dict for MultiWorkerMirroredStrategy: all hosts as workers, this host's index as the task."""
    ordered = sorted(hosts.all)
    if hosts.current not in ordered:
        raise ConfigError(f"current host {hosts.current!r} is not among the hosts {ordered}: check resourceconfig.json")
    return {
        "cluster": {"worker": [f"{host}:{port}" for host in ordered]},
        "task": {"type": "worker", "index": ordered.index(hosts.current)},
        "environment": "cloud",
    }


def placement(hosts: Hosts, strategy: str = "none") -> Placement:
    """This host's placement among ``hosts``."""
    ordered = sorted(hosts.all) or [hosts.current]
    index = ordered.index(hosts.current) if hosts.current in ordered else 0
    return Placement(hosts.current, index, len(ordered), index == 0, strategy)


def backend() -> str:
    """The Keras backend in use (``tensorflow``, ``jax``, ``torch``...)."""
    import keras

    return keras.backend.backend()


def setup(hosts: Hosts, num_gpus: int | None, environ: MutableMapping[str, str] = os.environ):
    """Choose and create the distribution strategy; call before building the model.

    Args:
        hosts: this host and its peers (``TrainingEnv.hosts``).
        num_gpus: GPUs on this host (``SM_NUM_GPUS``; None when unknown).
        environ: where ``TF_CONFIG`` is set for multi-host runs.

    Returns:
        ``(placement, scope)``: the placement and a context manager to build and compile the model in.

    Raises:
        ConfigError: several hosts with a backend other than TensorFlow.
    """
    name = backend()
    if len(hosts.all) > 1:
        if name != "tensorflow":
            raise ConfigError(f"multi-host training needs KERAS_BACKEND=tensorflow (the backend is {name})")
        environ[TF_CONFIG_ENV] = json.dumps(tf_config(hosts))
        return placement(hosts, "multi_worker_mirrored"), _tf_strategy_scope(multi_worker=True)
    if (num_gpus or 0) > 1:
        if name == "tensorflow":
            return placement(hosts, "mirrored"), _tf_strategy_scope(multi_worker=False)
        if name == "jax":
            _set_jax_data_parallel()
            return placement(hosts, "data_parallel"), contextlib.nullcontext()
        logger.warning("%d GPUs but backend %s: training on one", num_gpus, name)
    return placement(hosts), contextlib.nullcontext()


def _tf_strategy_scope(multi_worker: bool):
    import tensorflow as tf

    if multi_worker:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.MirroredStrategy()
    logger.info("%s with %d replicas in sync", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy.scope()


def _set_jax_data_parallel() -> None:
    import keras

    devices = keras.distribution.list_devices("gpu")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    logger.info("Keras DataParallel over %d devices", len(devices))

