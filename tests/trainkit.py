"""Test helpers for training: tiny processed-data directories written straight through the shard format.

``write_dataset`` writes shards with ``shards.write_shard`` and a manifest the way ``video3dcnn process`` does, so
training can be tested without decoding any video. Class ``k`` is easy to learn: a bright band at row block ``k``.
``write_model_dir`` writes an untrained model directory as ``video3dcnn train`` leaves one, for predict and serve.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from video3dcnn import shards
from video3dcnn.config import ClipSpec
from video3dcnn.files import write_json_atomic
from video3dcnn.model_files import CLIP_SPEC_FILE, MODEL_FILE

TINY_SPEC = ClipSpec(frames=4, height=8, width=8)


def class_clips(labels: np.ndarray, spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """Noisy uint8 clips ``[N, T, H, W, C]`` where label ``k`` lights up the k-th horizontal band."""
    clips = rng.integers(0, 60, (len(labels), *spec.shape), dtype=np.uint8)
    bands = int(labels.max()) + 1 if len(labels) else 1
    band = max(spec.height // max(bands, 1), 1)
    for row, label in enumerate(labels):
        clips[row, :, label * band : (label + 1) * band] += 150
    return clips


def write_dataset(
    directory: Path,
    classes: tuple[str, ...] = ("a", "b"),
    clips_per_class: int = 8,
    spec: ClipSpec = TINY_SPEC,
    shard_size: int = 6,
    val_every: int = 4,
    host: str = "algo-1",
    seed: int = 0,
) -> shards.DatasetIndex:
    """Write a processed-data directory (shards, manifest-<host>.json, classes.txt) and return its index.

    Every ``val_every``-th clip of each class is marked ``is_val`` (0: none). Clips are interleaved by class, then cut into shards
    of ``shard_size``.
    """
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(classes), dtype=np.int32), clips_per_class)
    clips = class_clips(labels, spec, rng)
    rounds = np.arange(len(labels)) // len(classes)  # every class gets validation clips
    is_val = (rounds % val_every == val_every - 1) if val_every else np.zeros(len(labels), bool)
    entries = []
    for number, start in enumerate(range(0, len(labels), shard_size)):
        rows = slice(start, start + shard_size)
        entries.append(_write_one(directory, host, number, clips[rows], labels[rows], is_val[rows], spec))
    write_manifest(directory, host, classes, spec, entries)
    return shards.load_index(directory)


def _write_one(directory, host, number, clips, labels, is_val, spec) -> dict:
    name = shards.shard_name(host, number)
    count = len(labels)
    shard = shards.Shard(
        clips=clips,
        labels=labels,
        groups=np.array([f"g{i}" for i in range(count)]),
        is_val=is_val,
        paths=np.array([f"{host}/{number}/{i}.mp4" for i in range(count)]),
        frame_indices=np.tile(np.arange(spec.frames, dtype=np.int32), (count, 1)),
    )
    shards.write_shard(Path(directory) / name, shard)
    return {"file": name, "clips": count, "train": int((~is_val).sum()), "validation": int(is_val.sum())}


def write_manifest(directory: Path, host: str, classes, spec: ClipSpec, entries: list[dict]) -> Path:
    """Write ``manifest-<host>.json`` and ``classes.txt`` for already written shards."""
    manifest = {
        "schema_version": shards.SCHEMA_VERSION,
        "host": host,
        "classes": list(classes),
        "clip_spec": spec.to_dict(),
        "shards": entries,
        "skipped": [],
    }
    path = Path(directory) / shards.manifest_name(host)
    shards.write_classes(Path(directory), classes)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def write_model_dir(directory: Path, spec: ClipSpec, classes: tuple[str, ...], seed: int = 0) -> Path:
    """A model directory (``model.keras``, ``classes.txt``, ``clip_spec.json``) holding an untrained ``bn`` model."""
    import keras

    from video3dcnn.checkpoints import save_model
    from video3dcnn.model import build_model

    keras.utils.set_random_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(build_model(spec.shape, len(classes), "bn"), directory / MODEL_FILE)
    shards.write_classes(directory, classes)
    write_json_atomic(directory / CLIP_SPEC_FILE, spec.to_dict())
    return directory
