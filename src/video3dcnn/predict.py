"""Inference with a trained model directory: videos decoded exactly like processing, predictions written as CSV.

A model directory (``SM_MODEL_DIR`` of a training job, i.e. ``model.tar.gz`` extracted) holds the files of
``model_files``: ``model.keras``, ``classes.txt`` and ``clip_spec.json``. Videos go through
``video3dcnn.decoding.decode_clips`` with the stored clip spec, the same code path as ``video3dcnn process``, so
preprocessing cannot drift between training and prediction. When a spec yields several clips per video (sliding
windows), the clip probabilities are averaged per video.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video3dcnn.config import ClipSpec
from video3dcnn.errors import ConfigError, DataError, ToolkitError, VideoDecodeError
from video3dcnn.files import write_text_atomic
from video3dcnn.discovery import not_a_file
from video3dcnn.model_files import (
    CLIP_SPEC_FILE,
    MODEL_ARCHIVE,
    MODEL_DIR_FILES,
    MODEL_FILE,
    extract_model_archive,
    read_clip_spec,
)
from video3dcnn.shards import CLASSES_FILE, read_classes

logger = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    """A loaded model with the class list and clip spec it was trained with."""

    model: object
    classes: tuple[str, ...]
    clip_spec: ClipSpec
    directory: Path


@dataclass(frozen=True)
class VideoPrediction:
    """The prediction for one video: classes ranked by averaged probability, or the reason it failed."""

    path: Path
    ranked: tuple[tuple[str, float], ...] = ()
    clips: int = 0
    error: str = ""

    @property
    def predicted(self) -> str:
        return self.ranked[0][0] if self.ranked else ""

    @property
    def probability(self) -> float | None:
        return self.ranked[0][1] if self.ranked else None


def _check_model_files(model_dir: Path) -> None:
    """Raise ConfigError unless ``model_dir`` holds the three files as regular files (links to files are fine)."""
    for name in MODEL_DIR_FILES:
        kind = not_a_file(model_dir / name)
        if kind == "missing":
            raise ConfigError(
                f"{model_dir} has no {name}: point --model-dir at the model directory of 'video3dcnn train' "
                "(or a folder holding its model.tar.gz)"
            )
        if kind is not None:
            raise ConfigError(f"{model_dir / name} is {kind}, not a file")


def _load_keras_model(path: Path):
    """``keras.saving.load_model`` (Keras' safe mode: no code in the file runs), failures as one line."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged or foreign file makes Keras raise is a data problem
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise DataError(f"cannot load the model {path}: {reason}") from None


def check_model_fits(model, spec: ClipSpec, classes: Sequence[str], model_dir: Path) -> None:
    """Refuse a model whose input is not the clip spec's clips, or whose output is not one score per class.

    Raises:
        DataError: naming both sides (the files of one directory come from different runs, or were edited).
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        counts = f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        raise DataError(f"{model_dir / MODEL_FILE} has {counts}, not one of each")
    takes = tuple(model.inputs[0].shape[1:])
    if len(takes) != 4 or any(dim is not None and dim != want for dim, want in zip(takes, spec.shape)):
        shown = "x".join("?" if dim is None else str(dim) for dim in takes)
        raise DataError(
            f"{model_dir / CLIP_SPEC_FILE} describes {'x'.join(map(str, spec.shape))} clips (TxHxWxC) but "
            f"{MODEL_FILE} takes {shown}: the files come from different training runs"
        )
    outputs = model.outputs[0].shape[-1]
    if outputs != len(classes):
        raise DataError(f"{model_dir / MODEL_FILE} predicts {outputs} classes but classes.txt lists {len(classes)}")


def load_trained(model_dir: Path) -> TrainedModel:
    """Load ``model.keras``, ``classes.txt`` and ``clip_spec.json`` from ``model_dir`` (unpacking a ``model.tar.gz``
    found there instead, see ``model_files.extract_model_archive``).

    Raises:
        ConfigError: ``model_dir`` is not a trained-model directory (names the missing file).
        DataError: the files are unreadable, out of bounds or disagree (clip spec vs. model input, class count vs.
            model output), or the archive is not one.
    """
    model_dir = Path(model_dir)
    if not_a_file(model_dir / MODEL_FILE) == "missing" and not_a_file(model_dir / MODEL_ARCHIVE) is None:
        extract_model_archive(model_dir)
    _check_model_files(model_dir)
    classes = tuple(read_classes(model_dir / CLASSES_FILE))
    spec = read_clip_spec(model_dir / CLIP_SPEC_FILE)
    model = _load_keras_model(model_dir / MODEL_FILE)
    check_model_fits(model, spec, classes, model_dir)
    return TrainedModel(model, classes, spec, model_dir)


def predict_clips(model, clips: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``[N, num_classes]`` of uint8 clips ``[N, T, H, W, C]``."""
    outputs = [np.asarray(model.predict_on_batch(clips[i : i + batch_size])) for i in range(0, len(clips), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, model.outputs[0].shape[-1]), np.float32)


def rank(probabilities: np.ndarray, classes: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """Classes and probabilities, most probable first (ties keep class order)."""
    order = np.argsort(-probabilities, kind="stable")
    return tuple((classes[i], float(probabilities[i])) for i in order)


def decode_video(trained: TrainedModel, path: Path) -> np.ndarray:
    """The uint8 clips ``[K, T, H, W, C]`` the model's clip spec takes from ``path``, decoded like processing.

    Raises:
        VideoDecodeError: the video cannot be decoded.
    """
    from video3dcnn.decoding import FROZEN_WARNING, decode_clips, frozen

    kind = not_a_file(Path(path))
    if kind is not None and kind != "missing":  # a named pipe would block the decoder; missing files it reports
        raise VideoDecodeError(f"{path} is {kind}, not a video file")
    decoded = decode_clips(Path(path), trained.clip_spec)
    if frozen(decoded):
        logger.warning("%s: %s", path, FROZEN_WARNING)
    return decoded.clips


def video_probabilities(trained: TrainedModel, path: Path, batch_size: int = 32) -> tuple[np.ndarray, int]:
    """Decode ``path`` like processing and return its clip-averaged probabilities and clip count.

    Raises:
        VideoDecodeError: the video cannot be decoded.
    """
    probabilities = predict_clips(trained.model, decode_video(trained, path), batch_size)
    return probabilities.mean(axis=0), len(probabilities)


def predict_videos(trained: TrainedModel, paths: Iterable[Path], batch_size: int = 32) -> Iterator[VideoPrediction]:
    """Predict every video; one that fails yields a prediction with ``error`` set instead of raising, so one bad
    file never ends a run: a ``ToolkitError`` gives its reason, anything else ``internal error: <type>: <message>``
    (its traceback is logged at DEBUG level)."""
    for path in paths:
        try:
            probabilities, clips = video_probabilities(trained, path, batch_size)
        except ToolkitError as exc:
            logger.warning("%s: %s", path, exc)
            yield VideoPrediction(Path(path), error=str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - the row reports it; the other videos still get predictions
            reason = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            logger.error("%s: %s (--log-level DEBUG shows the traceback)", path, reason)
            logger.debug("%s", path, exc_info=True)
            yield VideoPrediction(Path(path), error=reason)
            continue
        yield VideoPrediction(Path(path), rank(probabilities, trained.classes), clips)


def csv_header(top_k: int) -> list[str]:
    """``path,predicted,probability``, then ``top<k>,top<k>_probability`` for k = 2..top_k, then ``clips,error``."""
    extra = [name for k in range(2, top_k + 1) for name in (f"top{k}", f"top{k}_probability")]
    return ["path", "predicted", "probability", *extra, "clips", "error"]


def ranking_cells(ranked: Sequence[tuple[str, float]], top_k: int) -> list[str]:
    """``predicted,probability[,top<k>,top<k>_probability...]`` cells of a ranking (empty cells past its end)."""
    cells = []
    for k in range(top_k):
        name, probability = ranked[k] if k < len(ranked) else ("", None)
        cells += [name, "" if probability is None else f"{probability:.6f}"]
    return cells


def csv_row(prediction: VideoPrediction, top_k: int) -> list[str]:
    """One CSV row (empty class and probability cells for a video that failed)."""
    return [str(prediction.path), *ranking_cells(prediction.ranked, top_k), str(prediction.clips), prediction.error]


def write_predictions(predictions: Iterable[VideoPrediction], path: Path | None, top_k: int = 1) -> list[VideoPrediction]:
    """Write the predictions as CSV to ``path`` (atomically), or to stdout when ``path`` is None; return them."""
    collected = list(predictions)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_header(top_k))
    writer.writerows(csv_row(p, top_k) for p in collected)
    if path is None:
        print(buffer.getvalue(), end="")
    else:
        write_text_atomic(Path(path), buffer.getvalue())
    return collected
