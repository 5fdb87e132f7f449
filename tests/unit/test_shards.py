"""The shard format: round trips, np.load compatibility, corruption, manifests and class lists."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from video3dcnn import shards
from video3dcnn.config import ClipSpec
from video3dcnn.errors import DataError
from video3dcnn.files import write_json_atomic

SPEC = ClipSpec(frames=4, height=8, width=8)


def make_shard(n: int = 6, seed: int = 0) -> shards.Shard:
    rng = np.random.default_rng(seed)
    return shards.Shard(
        clips=rng.integers(0, 256, (n, *SPEC.shape), dtype=np.uint8),
        labels=np.arange(n, dtype=np.int32) % 3,
        groups=np.array([f"Class_g{i // 2:02d}" for i in range(n)]),
        is_val=np.arange(n) % 3 == 0,
        paths=np.array([f"Class/v_Class_g{i // 2:02d}_c{i:02d}.avi" for i in range(n)]),
        frame_indices=np.tile(np.arange(SPEC.frames, dtype=np.int32), (n, 1)),
    )


def assert_same(a: shards.Shard, b: shards.Shard) -> None:
    for key in shards.SHARD_KEYS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_and_np_load_compatible(tmp_path, compress):
    shard = make_shard()
    path = tmp_path / shards.shard_name("algo-1", 0)
    size = shards.write_shard(path, shard, compress=compress)
    assert size == path.stat().st_size
    assert_same(shards.read_shard(path), shard)
    with np.load(path, allow_pickle=False) as plain:  # an ordinary npz
        assert sorted(plain.files) == sorted(shards.SHARD_KEYS)
        np.testing.assert_array_equal(plain["clips"], shard.clips)
    with zipfile.ZipFile(path) as archive:
        method = archive.getinfo("clips.npy").compress_type
        assert method == (zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        assert archive.getinfo("paths.npy").compress_type == zipfile.ZIP_DEFLATED


def test_subset_of_keys_and_same_bytes_for_same_arrays(tmp_path):
    shard = make_shard()
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    shards.write_shard(a, shard)
    shards.write_shard(b, shard)
    assert a.read_bytes() == b.read_bytes()  # deterministic output: fixed member timestamps
    subset = shards.read_shard(a, keys=("labels", "is_val"))
    assert set(subset) == {"labels", "is_val"}
    np.testing.assert_array_equal(subset["labels"], shard.labels)


def test_uncompressed_clips_cost_about_a_quarter_of_float32(tmp_path):
    shard = make_shard(n=64)
    path = tmp_path / "s.npz"
    size = shards.write_shard(path, shard, compress=False)
    float32_bytes = shard.clips.size * 4
    assert size < 0.26 * float32_bytes


def test_corrupt_member_is_detected(tmp_path):
    path = tmp_path / "s.npz"
    shards.write_shard(path, make_shard(), compress=False)
    data = bytearray(path.read_bytes())
    offset = data.index(b"\x93NUMPY") + 200  # inside the stored clips member
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt"):
        shards.read_shard(path)


@pytest.mark.parametrize(
    "content, match",
    [(b"", "cannot read shard"), (b"not a zip at all", "cannot read shard")],
)
def test_unreadable_files(tmp_path, content, match):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        shards.read_shard(path)


def test_missing_member_and_pickled_arrays_are_refused(tmp_path):
    partial = tmp_path / "partial.npz"
    np.savez(partial, clips=np.zeros((1, *SPEC.shape), np.uint8))
    with pytest.raises(DataError, match="missing labels"):
        shards.read_shard(partial)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{key: np.array([object()], dtype=object) for key in shards.SHARD_KEYS})
    with pytest.raises(DataError, match="Python objects"):
        shards.read_shard(pickled)


def test_validate_rejects_inconsistent_arrays():
    shard = make_shard()
    shard.labels = shard.labels[:-1]
    with pytest.raises(DataError, match="disagree in length"):
        shard.validate()
    with pytest.raises(DataError, match="does not match the clip spec"):
        make_shard().validate(ClipSpec(frames=5, height=8, width=8))


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", explode)
    with pytest.raises(RuntimeError):
        shards.write_shard(tmp_path / "s.npz", make_shard())
    assert list(tmp_path.iterdir()) == []


def test_classes_file_overwritten_never_appended(tmp_path):
    shards.write_classes(tmp_path, ["b", "a"])
    shards.write_classes(tmp_path, ["x", "y", "z"])
    assert (tmp_path / "classes.txt").read_text() == "x\ny\nz\n"
    assert shards.read_classes(tmp_path / "classes.txt") == ["x", "y", "z"]


@pytest.mark.parametrize("text, match", [("a\nb\na\n", "repeats a"), ("\n# only a comment\n", "is empty")])
def test_bad_class_lists(tmp_path, text, match):
    (tmp_path / "classes.txt").write_text(text)
    with pytest.raises(DataError, match=match):
        shards.read_classes(tmp_path / "classes.txt")


def write_host(directory, host, classes=("a", "b", "c"), spec=SPEC):
    shard = make_shard()
    name = shards.shard_name(host, 0)
    shards.write_shard(directory / name, shard)
    manifest = {
        "schema_version": shards.SCHEMA_VERSION,
        "classes": list(classes),
        "clip_spec": spec.to_dict(),
        "shards": [{"file": name, "clips": len(shard), "train": 4, "validation": 2}],
    }
    write_json_atomic(directory / shards.manifest_name(host), manifest)


def test_load_index_merges_hosts(tmp_path):
    write_host(tmp_path, "algo-1")
    write_host(tmp_path, "algo-2")
    (tmp_path / "algo-3-00000.npz").write_bytes(b"unlisted, from a killed run")
    index = shards.load_index(tmp_path)
    assert index.classes == ("a", "b", "c")
    assert index.clip_spec == SPEC
    assert [s.path.name for s in index.shards] == ["algo-1-00000.npz", "algo-2-00000.npz"]
    assert (index.num_train, index.num_validation) == (8, 4)


def test_load_index_names_the_manifests_that_disagree(tmp_path):
    write_host(tmp_path, "algo-1")
    write_host(tmp_path, "algo-2", classes=("a", "b"))
    with pytest.raises(DataError, match="manifest-algo-1.json and manifest-algo-2.json"):
        shards.load_index(tmp_path)


def test_load_index_clip_spec_mismatch_and_missing_shard(tmp_path):
    write_host(tmp_path, "algo-1")
    write_host(tmp_path, "algo-2", spec=ClipSpec(frames=4, height=8, width=8, gray=True))
    with pytest.raises(DataError, match="clip specs differ"):
        shards.load_index(tmp_path)
    (tmp_path / shards.manifest_name("algo-2")).unlink()
    (tmp_path / "algo-1-00000.npz").unlink()
    with pytest.raises(DataError, match="lists algo-1-00000.npz, which is missing"):
        shards.load_index(tmp_path)


def test_load_index_errors_for_empty_dir_and_other_schema(tmp_path):
    with pytest.raises(DataError, match="point this at the output of 'video3dcnn process'"):
        shards.load_index(tmp_path)
    (tmp_path / shards.manifest_name("h")).write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(DataError, match="schema_version 99"):
        shards.load_index(tmp_path)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("zip64", [False, True], ids=["zip", "zip64"])
@pytest.mark.parametrize("deflater", ["isal", "zlib"])
def test_zip_members_check_out_with_zipfile_and_numpy(tmp_path, monkeypatch, compress, zip64, deflater):
    if deflater == "zlib":  # where the isal package is not installed
        monkeypatch.setattr(shards, "_deflate", None)
    else:
        from isal import isal_zlib

        assert shards._deflate is isal_zlib
    if zip64:  # every size and offset past 64 bytes takes the ZIP64 fields, as past 4 GiB in a real shard
        monkeypatch.setattr(shards._ZipWriter, "LIMIT", 64)
    shard = make_shard(n=9)
    shard.clips[::2] //= 16  # compressible clips too, not only random bytes that deflate stores
    path = tmp_path / "s.npz"
    shards.write_shard(path, shard, compress=compress)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC and size check out
        methods = {info.filename: info.compress_type for info in archive.infolist()}
        assert archive.namelist() == [f"{key}.npy" for key in shards.SHARD_KEYS]
    assert methods["clips.npy"] == (zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
    assert methods["labels.npy"] == zipfile.ZIP_DEFLATED
    with np.load(path, allow_pickle=False) as loaded:
        assert_same(shards.Shard(**{key: loaded[key] for key in shards.SHARD_KEYS}), shard)
    assert_same(shards.read_shard(path), shard)


def test_clips_compressed_elsewhere_give_the_same_file(tmp_path):
    """Pieces deflated clip by clip (as the processing workers do) join into the bytes write_shard makes itself."""
    shard = make_shard(n=7)
    shards.write_shard(tmp_path / "here.npz", shard)
    pieces = [shards.deflate_clip(clip) for clip in shard.clips]
    shards.write_shard(tmp_path / "workers.npz", shard, clip_pieces=pieces)
    assert (tmp_path / "here.npz").read_bytes() == (tmp_path / "workers.npz").read_bytes()
    with pytest.raises(ValueError, match="6 compressed pieces for 7 clips"):
        shards.write_shard(tmp_path / "short.npz", shard, clip_pieces=pieces[:6])
    assert not (tmp_path / "short.npz").exists()


def test_a_manifest_with_an_absurd_clip_spec_is_a_one_line_error(tmp_path) -> None:
    from trainkit import write_dataset

    write_dataset(tmp_path)
    path = tmp_path / "manifest-algo-1.json"
    manifest = json.loads(path.read_text())
    manifest["clip_spec"] = {**manifest["clip_spec"], "height": 100000, "width": 100000}
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"manifest-algo-1.json holds no valid clip_spec \(size must be between"):
        shards.load_index(tmp_path)
