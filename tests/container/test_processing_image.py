"""The processing image: what it contains, a Processing job on real encoded videos, and a job that must fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from containers import HOST, SYNTHETIC_CLASSES, ContainerRun, check_image, processing_tree, run_container
from videos import decode_clip, is_rgb, write_index_video

from video3dcnn import shards

pytestmark = pytest.mark.container

MAX_SIZE_BYTES = 500 * 10**6  # PyAV's FFmpeg libraries are about 100 MB of it


def test_image_is_an_exec_form_entrypoint_without_tensorflow(docker_client, processing_image: str) -> None:
    probe = (
        "import importlib.util as u; "
        "assert u.find_spec('tensorflow') is None, 'tensorflow'; "
        "assert u.find_spec('cv2') is not None, 'cv2'; "
        "assert u.find_spec('av') is not None, 'av'"
    )
    config = check_image(docker_client, processing_image, MAX_SIZE_BYTES, probe)
    assert config["Entrypoint"] == ["video3dcnn", "process"]


def test_processing_job_writes_shards_manifest_and_classes(processed: tuple[ContainerRun, Path]) -> None:
    run, root = processed
    assert run.exit_code == 0, run.describe()
    output = root / "processed"
    assert (output / shards.CLASSES_FILE).read_text(encoding="utf-8").split() == SYNTHETIC_CLASSES
    assert (output / shards.manifest_name(HOST)).is_file()
    index = shards.load_index(output)
    assert list(index.classes) == SYNTHETIC_CLASSES
    assert index.clip_spec.shape == (8, 32, 32, 3)
    assert index.num_train > 0 and index.num_validation > 0
    assert all(info.path.name.startswith(f"{HOST}-") for info in index.shards)
    shard = shards.read_shard(index.shards[0].path)
    assert shard.clips.dtype == np.uint8 and shard.clips.shape[1:] == (8, 32, 32, 3)
    assert not (root / "output/message").exists()


@pytest.mark.parametrize("codec", ["mp4v", "h264"])
def test_container_decodes_every_frame_in_order(docker_client, processing_image: str, opt_ml: Path, codec: str) -> None:
    videos = opt_ml / "videos"
    for label in ("first", "second"):
        write_index_video(videos / label / f"{label}.mp4", 40, codec=codec)
    mounts = processing_tree(opt_ml, videos)
    run = run_container(docker_client, processing_image, ["--frames", "8", "--size", "32x32", "--sampling", "head"],
                        mounts)  # fmt: skip
    assert run.exit_code == 0, run.describe()
    index = shards.load_index(opt_ml / "processed")
    shard = shards.read_shard(index.shards[0].path)
    for clip, frame_indices in zip(shard.clips, shard.frame_indices, strict=True):
        assert decode_clip(clip) == list(range(8)) == frame_indices.tolist()
        assert is_rgb(clip[0])


def test_only_corrupt_videos_fail_the_job_with_a_message(
    docker_client, processing_image: str, opt_ml: Path
) -> None:
    videos = opt_ml / "videos"
    for label in ("a", "b"):
        (videos / label).mkdir(parents=True)
        (videos / label / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    run = run_container(docker_client, processing_image, [], processing_tree(opt_ml, videos))
    assert run.exit_code != 0, run.describe()
    message = (opt_ml / "output/message").read_text(encoding="utf-8")
    assert "broken.mp4" in message and "Traceback" not in message
    assert not shards.find_manifests(opt_ml / "processed")
