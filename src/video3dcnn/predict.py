"""Inference with a trained model directory: videos decoded exactly like processing, predictions written as CSV.

A model directory (``SM_MODEL_DIR`` of a training job, i.e. ``model.tar.gz`` extracted) holds the files of
``model_files``: ``model.keras``, ``classes.txt`` and ``clip_spec.json``. Videos go through
``video3dcnn.video.decode_clips`` with the stored clip spec, the same code path as ``video3dcnn process``, so
preprocessing cannot drift between training and prediction. When a spec yields several clips per video (sliding
windows), the clip probabilities are averaged per video.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video3dcnn.config import ClipSpec
from video3dcnn.errors import ConfigError, DataError, ToolkitError
from video3dcnn.files import write_text_atomic
from video3dcnn.model_files import CLIP_SPEC_FILE, MODEL_ARCHIVE, MODEL_DIR_FILES, MODEL_FILE
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


def _extract_archive(model_dir: Path) -> None:
    """Unpack a ``model.tar.gz`` downloaded from S3 in place (only the three files predict needs)."""
    with tarfile.open(model_dir / MODEL_ARCHIVE, "r:gz") as archive:
        for name in MODEL_DIR_FILES:
            try:
                member = archive.getmember(name)
            except KeyError:
                raise DataError(f"{model_dir / MODEL_ARCHIVE} lacks {name}: is it a video3dcnn model archive?") from None
            archive.extract(member, model_dir, filter="data")


def load_trained(model_dir: Path) -> TrainedModel:
    """Load ``model.keras``, ``classes.txt`` and ``clip_spec.json`` from ``model_dir``.

    Raises:
        ConfigError: ``model_dir`` is not a trained-model directory (names the missing file).
        DataError: the files are unreadable or disagree (class count vs. model output).
    """
    import keras

    model_dir = Path(model_dir)
    if not (model_dir / MODEL_FILE).is_file() and (model_dir / MODEL_ARCHIVE).is_file():
        _extract_archive(model_dir)
    for name in MODEL_DIR_FILES:
        if not (model_dir / name).is_file():
            raise ConfigError(
                f"{model_dir} has no {name}: point --model-dir at the model directory of 'video3dcnn train' "
                "(or an extracted model.tar.gz)"
            )
    classes = tuple(read_classes(model_dir / CLASSES_FILE))
    try:
        spec = ClipSpec.from_dict(json.loads((model_dir / CLIP_SPEC_FILE).read_text(encoding="utf-8")))
        model = keras.saving.load_model(model_dir / MODEL_FILE, compile=False)
    except (ValueError, TypeError, OSError) as exc:
        raise DataError(f"cannot load the model in {model_dir}: {exc}") from None
    outputs = model.outputs[0].shape[-1]
    if outputs != len(classes):
        raise DataError(f"{model_dir / MODEL_FILE} predicts {outputs} classes but classes.txt lists {len(classes)}")
    return TrainedModel(model, classes, spec, model_dir)


def predict_clips(model, clips: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``[N, num_classes]`` of uint8 clips ``[N, T, H, W, C]``."""
    outputs = [np.asarray(model.predict_on_batch(clips[i : i + batch_size])) for i in range(0, len(clips), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, model.outputs[0].shape[-1]), np.float32)


def rank(probabilities: np.ndarray, classes: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """Classes and probabilities, most probable first (ties keep class order)."""
    order = np.argsort(-probabilities, kind="stable")
    return tuple((classes[i], float(probabilities[i])) for i in order)


def video_probabilities(trained: TrainedModel, path: Path, batch_size: int = 32) -> tuple[np.ndarray, int]:
    """Decode ``path`` like processing and return its clip-averaged probabilities and clip count.

    Raises:
        VideoDecodeError: the video cannot be decoded.
    """
    from video3dcnn.video import FROZEN_WARNING, decode_clips, frozen

    decoded = decode_clips(Path(path), trained.clip_spec)
    if frozen(decoded):
        logger.warning("%s: %s", path, FROZEN_WARNING)
    probabilities = predict_clips(trained.model, decoded.clips, batch_size)
    return probabilities.mean(axis=0), len(decoded.clips)


def predict_videos(trained: TrainedModel, paths: Iterable[Path], batch_size: int = 32) -> Iterator[VideoPrediction]:
    """Predict every video; one that cannot be decoded yields a prediction with ``error`` set instead of raising."""
    for path in paths:
        try:
            probabilities, clips = video_probabilities(trained, path, batch_size)
        except ToolkitError as exc:
            logger.warning("%s: %s", path, exc)
            yield VideoPrediction(Path(path), error=str(exc))
            continue
        yield VideoPrediction(Path(path), rank(probabilities, trained.classes), clips)


def csv_header(top_k: int) -> list[str]:
    """``path,predicted,probability``, then ``top<k>,top<k>_probability`` for k = 2..top_k, then ``clips,error``."""
    extra = [name for k in range(2, top_k + 1) for name in (f"top{k}", f"top{k}_probability")]
    return ["path", "predicted", "probability", *extra, "clips", "error"]


def csv_row(prediction: VideoPrediction, top_k: int) -> list[str]:
    """One CSV row (empty class and probability cells for a video that failed)."""
    cells = [str(prediction.path)]
    for k in range(top_k):
        name, probability = prediction.ranked[k] if k < len(prediction.ranked) else ("", None)
        cells += [name, "" if probability is None else f"{probability:.6f}"]
    return [*cells, str(prediction.clips), prediction.error]


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
