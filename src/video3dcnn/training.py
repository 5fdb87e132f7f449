"""Compile, fit, checkpoint and save: the training run itself, with no argparse and no ``os.environ``.

``cli/train.py`` resolves the configuration, directories and distribution (``distribute.setup``), then calls
``train``. Every epoch logs one line in the stable format of ``metric_line`` (``callbacks.MetricLine``); the model
directory gets the files of ``model_files``, the output data directory ``metrics.json``, ``history.csv`` and the plots.

Every host of a job runs ``train`` with its own ``Placement``: all of them build, fit and validate together; only the
chief logs the metric lines and writes checkpoints, the model and the outputs.

Checkpoints come after every epoch and at least every ``checkpoint_minutes``; a run resumes from the newest one, in the
middle of an epoch if need be (the loader skips the batches done: batch ``i`` of an epoch is a pure function of the
seed, the epoch and ``i``). With a ``signals.StopRequest`` (SIGTERM), fitting stops at the next batch boundary after a
checkpoint. ``model.keras`` is renamed into the model directory last, after every other output: a model directory
with it is complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from video3dcnn import checkpoints
from video3dcnn.callbacks import EpochCheckpoint, GracefulStop, MetricLine, NonFiniteLoss, Progress
from video3dcnn.convergence import still_improving, warn_if_still_improving
from video3dcnn.data import CACHED_WINDOWS, split_loaders, validation_loader
from video3dcnn.distribute import Placement
from video3dcnn.errors import DataError
from video3dcnn.evaluation import evaluate_predictions, predict_loader
from video3dcnn.export import export_saved_model
from video3dcnn.files import WriteError, atomic_path, remove_stale_temporaries, write_json_atomic, write_text_atomic
from video3dcnn.hyperparameters import TrainConfig
from video3dcnn.metric_line import METRIC_KEYS
from video3dcnn.model import build_model
from video3dcnn.model_files import CLIP_SPEC_FILE, MODEL_FILE
from video3dcnn.plots import CONFUSION_MATRIX, TRAINING_CURVES, plot_confusion_matrix, plot_training_curves
from video3dcnn.shards import DatasetIndex, write_classes
from video3dcnn.signals import StopRequest

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"


@dataclass(frozen=True)
class TrainPaths:
    """Where a training run writes.

    Attributes:
        model_dir: model.keras, classes.txt, clip_spec.json (SM_MODEL_DIR in a job).
        output_data_dir: metrics.json, history.csv and the plots (SM_OUTPUT_DATA_DIR in a job).
        checkpoint_dir: per-epoch checkpoints, or None for none.
    """

    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path | None = None


@dataclass
class TrainResult:
    """What a run produced: the history of all epochs (resumed ones included) and the validation report."""

    history: dict[str, list] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    initial_epoch: int = 0
    initial_step: int = 0
    seconds: float = 0.0
    train_clips: int = 0
    validation_clips: int = 0


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """The Keras optimizer named by ``config.optimizer``, its learning rate constant or cosine-decayed to 1%."""
    rate = config.learning_rate
    if config.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.01)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(rate)
    return keras.optimizers.Adam(rate)


def compile_model(model, config: TrainConfig, steps_per_epoch: int):
    """Compile for integer labels: sparse categorical cross-entropy, accuracy.

    Both honour sample weights (padded clips of multi-replica jobs weigh 0): the loss is averaged over the weights,
    not the batch size, and accuracy is a weighted metric. Without weights both are the plain means.
    """
    optimizer = make_optimizer(config, steps_per_epoch)
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")
    model.compile(optimizer=optimizer, loss=loss, weighted_metrics=["accuracy"])
    return model


def _initial_model(config: TrainConfig, index: DatasetIndex, paths: TrainPaths, placement: Placement,
                   steps_per_epoch: int):
    """A resumed model, its position ``(epoch, step)`` and history when a checkpoint exists, else a new compiled model.

    Every host of a job must load the same checkpoint (SageMaker copies the checkpoint prefix to each host), so that
    all replicas start from the same weights, epoch and batch.

    Raises:
        DataError: the hosts found checkpoints of different positions, or a mid-epoch checkpoint of an epoch with
            another number of batches (other data or batch size).
    """
    found = checkpoints.latest(paths.checkpoint_dir, placement.host)
    position = found.position if found else (0, 0)
    epochs, steps = placement.gather(position[0]), placement.gather(position[1])
    if len(set(zip(epochs, steps))) > 1:
        listed = ", ".join(f"{host} {epoch}/{step}" for host, epoch, step in zip(placement.hosts, epochs, steps))
        raise DataError(f"the hosts would resume from different checkpoints (epoch/batch: {listed}): every host needs "
                        "the chief's checkpoints (SageMaker copies the checkpoint S3 prefix to each host at start)")
    if found is None:
        model = build_model(index.clip_spec.shape, len(index.classes), config.arch, config.dropout)
        return compile_model(model, config, steps_per_epoch), (0, 0), {}
    if found.step >= steps_per_epoch:
        raise DataError(f"{found.path} was taken after batch {found.step} of an epoch, but an epoch now has "
                        f"{steps_per_epoch} batches (other data or batch_size): delete the checkpoint to start over")
    logger.info("resuming from %s (%s)", found.path, found.describe())
    return checkpoints.load(found), found.position, found.history()


def _callbacks(config: TrainConfig, paths: TrainPaths, placement: Placement, history: dict, num_clips: int,
               validating: bool, stop: StopRequest | None):
    callbacks = [Progress(placement.progress, placement.starting), NonFiniteLoss(config.learning_rate)]
    if placement.is_chief:
        callbacks.append(MetricLine(num_clips))
    checkpoint = None
    if paths.checkpoint_dir is not None and placement.is_chief:  # every host starts from what SageMaker copies back
        checkpoint = EpochCheckpoint(paths.checkpoint_dir, placement.host, history, scope=placement.solo,
                                     every_seconds=config.checkpoint_minutes * 60)
        callbacks.append(checkpoint)
    if stop is not None:
        callbacks.append(GracefulStop(stop, placement, checkpoint))
    if config.early_stopping_patience:
        monitor = "val_loss" if validating else "loss"
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor, patience=config.early_stopping_patience, restore_best_weights=True)
        )
    return callbacks


def train(
    config: TrainConfig,
    index: DatasetIndex,
    validation_index: DatasetIndex | None,
    paths: TrainPaths,
    placement: Placement | None = None,
    extra_callbacks: list | None = None,
    stop: StopRequest | None = None,
) -> TrainResult:
    """Train on ``index`` (and validate), resuming from the newest checkpoint, and write every artefact.

    Args:
        config: the resolved hyperparameters.
        index: the training data (``shards.load_index``).
        validation_index: a separate validation data set, or None to use the ``is_val`` clips of ``index``.
        paths: output directories.
        placement: this host's place in the job (``distribute.setup``); default: one host, one device, the chief.
            Each host reads its own part of the clips; only the chief writes the model, the outputs and the
            checkpoints, and computes the validation report.
        extra_callbacks: more Keras callbacks (tests use one to interrupt a run).
        stop: the request SIGTERM fills in (its handler must be installed by the caller): while fitting, a stop waits
            for the next batch boundary and a checkpoint; otherwise it interrupts at once.

    Returns:
        The history of all epochs and (on the chief) the validation report.

    Raises:
        DataError: no training clips, inconsistent data, an unreadable checkpoint or a loss that is not a number.
        signals.Stopped: ``stop`` was requested.
        files.WriteError: an output or checkpoint cannot be written (a full disk).
    """
    placement = placement or Placement.single()
    started = time.perf_counter()
    if placement.is_chief:
        for directory in (paths.model_dir, paths.output_data_dir, paths.checkpoint_dir):
            remove_stale_temporaries(directory)
    keras.utils.set_random_seed(config.seed)  # the same on every host: the replicas start from the same weights
    train_loader, val_loader = _loaders(config, index, validation_index, placement)
    model, (initial_epoch, initial_step), history = _initial_model(config, index, paths, placement, len(train_loader))
    train_loader.epoch = initial_epoch
    train_clips, validation_clips = subset_sizes(index, validation_index)
    callbacks = _callbacks(config, paths, placement, history, train_clips, val_loader is not None, stop)
    with stop.deferring() if stop is not None else contextlib.nullcontext():
        history = _fit(model, config, train_loader, val_loader, (initial_epoch, initial_step), history,
                       callbacks + list(extra_callbacks or []))
    result = TrainResult(history=history, initial_epoch=initial_epoch, initial_step=initial_step,
                         seconds=time.perf_counter() - started, train_clips=train_clips,
                         validation_clips=validation_clips)
    if placement.is_chief:
        if stop is not None:
            stop.meanwhile = ("the final outputs were not all written (model.keras is written last); the newest "
                              "checkpoint holds the trained model and a rerun writes them")
        with placement.solo():
            save_outputs(model, config, index, validation_index, paths, result)
    return result


def subset_sizes(index: DatasetIndex, validation_index: DatasetIndex | None) -> tuple[int, int]:
    """Training and validation clips of the whole job."""
    if validation_index is not None:
        return sum(s.clips for s in index.shards), sum(s.clips for s in validation_index.shards)
    return index.num_train, index.num_validation


def _loaders(config: TrainConfig, index: DatasetIndex, validation_index: DatasetIndex | None, placement: Placement):
    buffer_clips = window_clips(config.shuffle_buffer_mb, index.clip_spec.shape)
    share = placement.share
    train_loader, val_loader = split_loaders(
        index, validation_index, config.batch_size, share, seed=config.seed, buffer_clips=buffer_clips,
        augment=config.augment, workers=config.workers,
    )
    train_clips, validation_clips = subset_sizes(index, validation_index)
    logger.info("%d training clips, %d validation clips, %d classes, clip shape %s; Keras %s on %s", train_clips,
                validation_clips, len(index.classes), index.clip_spec.shape, keras.__version__, keras.backend.backend())
    if share.replicas > 1:
        logger.info("batch_size %d over %d replicas (%d hosts x %d devices): %d clips per step, %d per host, %d per "
                    "device; %d steps per epoch", config.batch_size, share.replicas, share.hosts, share.devices,
                    share.global_batch(config.batch_size), share.host_batch(config.batch_size),
                    share.host_batch(config.batch_size) // share.devices, len(train_loader))
    return train_loader, val_loader


def _fit(model, config: TrainConfig, train_loader, val_loader, position: tuple[int, int], history: dict,
         callbacks: list):
    """Fit the remaining epochs from ``position`` (epochs done, batches of the next done) and return the history of
    all epochs. A run resumed in the middle of an epoch first fits the rest of that epoch on its own: Keras counts
    an epoch's batches once per ``fit``."""
    initial_epoch, initial_step = position
    if initial_epoch >= config.epochs:
        logger.info("the checkpoint already completed %d of %d epochs: nothing left to train", initial_epoch,
                    config.epochs)
        return history
    if initial_step:
        logger.info("resuming epoch %d after its batch %d of %d", initial_epoch + 1, initial_step, len(train_loader))
        train_loader.skip = initial_step
        for callback in callbacks:
            if isinstance(callback, EpochCheckpoint):
                callback.step_offset = initial_step
        history = _fit_epochs(model, train_loader, val_loader, initial_epoch, initial_epoch + 1, history, callbacks)
        for callback in callbacks:
            if isinstance(callback, EpochCheckpoint):
                callback.step_offset = 0
        initial_epoch += 1
        if initial_epoch >= config.epochs or model.stop_training:
            return history
    return _fit_epochs(model, train_loader, val_loader, initial_epoch, config.epochs, history, callbacks)


def _fit_epochs(model, train_loader, val_loader, initial_epoch: int, epochs: int, history: dict, callbacks: list):
    fitted = model.fit(
        train_loader, validation_data=val_loader, epochs=epochs, initial_epoch=initial_epoch,
        shuffle=False, verbose=0, callbacks=callbacks,
    )
    return _merge_history(history, fitted, initial_epoch)


def window_clips(buffer_mb: int, clip_shape: tuple[int, ...]) -> int:
    """Clips per loader window so that the windows the loader holds (``data.CACHED_WINDOWS``) fit in ``buffer_mb``."""
    return max(1, buffer_mb * 2**20 // CACHED_WINDOWS // math.prod(clip_shape))


def _merge_history(previous: Mapping[str, list], fitted, initial_epoch: int) -> dict[str, list]:
    """The resumed epochs' history followed by this run's (Keras' History covers only this run)."""
    merged = {key: list(values) for key, values in previous.items()}
    new = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    count = len(next(iter(new.values()), []))
    merged.setdefault("epoch", []).extend(range(initial_epoch + 1, initial_epoch + count + 1))
    for key, values in new.items():
        merged.setdefault(key, []).extend(values)
    return merged


def _validation_report(model, loader, classes) -> dict[str, Any]:
    labels, probabilities = predict_loader(model, loader)
    report = evaluate_predictions(labels, probabilities, classes)
    logger.info("validation accuracy %.4f on %d clips", report["accuracy"], report["count"])
    return report


def save_outputs(model, config: TrainConfig, index: DatasetIndex, validation_index: DatasetIndex | None,
                 paths: TrainPaths, result: TrainResult) -> None:
    """Write the model directory (model.keras, classes.txt, clip_spec.json) and the output data directory.

    The validation report (``result.report``) and the SavedModel come from the model as written, loaded back on this
    host alone: in a multi-host job the trained model's weights live on every host's devices. ``model.keras`` is
    written to a temporary name first and renamed last, after every other file (an earlier one is removed first):
    a model directory holding ``model.keras`` is complete, whenever the run was interrupted.

    Raises:
        files.WriteError: a file cannot be written (a full disk): the message names it.
    """
    final = paths.model_dir / MODEL_FILE
    try:
        final.unlink(missing_ok=True)
    except OSError as exc:
        raise WriteError(final, exc) from None
    with atomic_path(final, suffix=".tmp.keras", wrap_errors=False) as staged:  # renamed when the block ends
        try:
            model.save(staged)
        except OSError as exc:
            raise WriteError(final, exc) from None
        saved = keras.saving.load_model(staged)
        write_classes(paths.model_dir, index.classes)
        write_json_atomic(paths.model_dir / CLIP_SPEC_FILE, index.clip_spec.to_dict())
        _write_reports(saved, config, index, validation_index, paths, result)
    logger.info("model written to %s, metrics to %s", paths.model_dir, paths.output_data_dir)


def _write_reports(saved, config: TrainConfig, index: DatasetIndex, validation_index: DatasetIndex | None,
                   paths: TrainPaths, result: TrainResult) -> None:
    """The validation report, the SavedModel (if asked for), history.csv, metrics.json and the plots."""
    loader = validation_loader(index, validation_index, config.batch_size, workers=config.workers,
                               buffer_clips=window_clips(config.shuffle_buffer_mb, index.clip_spec.shape))
    if loader is not None:
        result.report = _validation_report(saved, loader, index.classes)
    if config.export_saved_model:
        export_saved_model(saved, paths.model_dir)
    out = paths.output_data_dir
    warn_if_still_improving(result.history)
    write_text_atomic(out / HISTORY_FILE, history_csv(result.history))
    write_json_atomic(out / METRICS_FILE, metrics_summary(config, index, result))
    if result.history.get("loss"):
        plot_training_curves(result.history, out / TRAINING_CURVES)
    if result.report is not None:
        plot_confusion_matrix(result.report["confusion_matrix"], index.classes, out / CONFUSION_MATRIX)


def history_csv(history: Mapping[str, list]) -> str:
    """The history as CSV: ``epoch`` first, then the metrics in a stable order, one row per epoch."""
    keys = ["epoch"] + [k for k in METRIC_KEYS if k in history] + sorted(set(history) - {"epoch", *METRIC_KEYS})
    rows = len(history.get("epoch", []))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for row in range(rows):
        writer.writerow([_cell(history.get(key, []), row) for key in keys])
    return buffer.getvalue()


def _cell(values: list, row: int) -> str:
    if row >= len(values):
        return ""
    value = values[row]
    return str(value) if isinstance(value, int) else f"{float(value):.6g}"


def metrics_summary(config: TrainConfig, index: DatasetIndex, result: TrainResult) -> dict[str, Any]:
    """The content of metrics.json: last and best epoch, the validation report and the settings."""
    history = result.history
    summary: dict[str, Any] = {
        "epochs_completed": len(history.get("epoch", [])),
        "train_clips": result.train_clips,
        "validation_clips": result.validation_clips,
    }
    if history.get("epoch"):
        summary["final"] = {key: values[-1] for key, values in history.items() if values}
    if history.get("val_accuracy"):
        best = max(range(len(history["val_accuracy"])), key=history["val_accuracy"].__getitem__)
        summary["best"] = {key: values[best] for key, values in history.items() if len(values) > best}
    summary["validation"] = result.report
    summary["still_improving"] = still_improving(history)  # non-empty: probably under-trained (convergence.py)
    summary["resumed_from_epoch"] = result.initial_epoch
    if result.initial_step:
        summary["resumed_from_step"] = result.initial_step
    summary["seconds"] = round(result.seconds, 1)
    summary["hyperparameters"] = config.hyperparameters()
    summary["keras_backend"] = keras.backend.backend()
    summary["classes"] = list(index.classes)
    summary["clip_spec"] = index.clip_spec.to_dict()
    return summary
