"""The training image as SageMaker starts it for inference: ``docker run <image> serve`` with a model it trained.

Requests go over HTTP to the published port, as SageMaker's front end sends them. Hostile bodies must each get an
answer (a 4xx with a one-line JSON reason) while the server stays healthy and keeps no request file; ``docker stop``
(SIGTERM) must end it promptly with exit code 0.
"""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from containers import (
    SYNTHETIC_CLASSES,
    TRAINING_IMAGE_MAX_BYTES,
    check_image,
    serving_container,
    wait_until_healthy,
)

from video3dcnn.serving import READY_MARKER

pytestmark = pytest.mark.container

CLIP_SHAPE = (8, 32, 32, 3)  # the clip spec of conftest.PROCESS_ARGS


def _request(url: str, body: bytes | None = None, content_type: str | None = None, accept: str | None = None):
    """``(status, body bytes, content type)`` of one request; HTTP errors are answers too."""
    headers = {key: value for key, value in (("Content-Type", content_type), ("Accept", accept)) if value}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get_content_type()


def _invoke(server, body: bytes, content_type: str = "video/mp4", accept: str | None = None):
    return _request(f"{server.url}/invocations", body, content_type, accept)


def _one_video_per_class(sample_videos: Path) -> dict[str, Path]:
    return {name: sorted((sample_videos / name).glob("*.mp4"))[0] for name in SYNTHETIC_CLASSES}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _scratch_files(server) -> list[str]:
    """Entries of the server's scratch directory (it must exist, and hold nothing between requests)."""
    result = server.container.exec_run(["sh", "-c", "ls -d /tmp/video3dcnn-serve-* && ls -A /tmp/video3dcnn-serve-*/"])
    assert result.exit_code == 0, result.output
    [_, *entries] = result.output.decode().split()
    return [name for name in entries if name != READY_MARKER]  # the workers' shared marker of a loaded model


def test_serve_is_the_inference_entry_point(docker_client, training_image: str) -> None:
    probe = (
        "assert shutil.which('serve') == '/usr/local/bin/serve', shutil.which('serve'); "
        "assert 'exec video3dcnn serve' in open('/usr/local/bin/serve').read()"
    )
    config = check_image(docker_client, training_image, TRAINING_IMAGE_MAX_BYTES, probe)
    # `serve` replaces CMD, as `train` does; the init execs it (docker/training/init)
    assert config["Cmd"] == ["train"] and config["Entrypoint"] == ["training-init"]


@pytest.fixture(scope="module")
def server(docker_client, training_image: str, trained_model: Path):
    with serving_container(docker_client, training_image, trained_model) as running:
        wait_until_healthy(running.url)
        yield running


def test_ping_is_200_with_an_empty_body(server) -> None:
    assert _request(f"{server.url}/ping")[:2] == (200, b"")


def test_every_class_is_predicted_from_its_video_file(server, sample_videos: Path) -> None:
    for name, path in _one_video_per_class(sample_videos).items():
        status, body, content_type = _invoke(server, path.read_bytes())
        assert status == 200 and content_type == "application/json", body
        answer = json.loads(body)
        assert answer["predicted"] == name, answer
        assert answer["classes"] == SYNTHETIC_CLASSES and answer["clips"] == 1
        status, line, content_type = _invoke(server, path.read_bytes(), accept="text/csv")
        assert (status, content_type) == (200, "text/csv") and line.decode().split(",")[0] == name


def test_execution_parameters_for_batch_transform(server) -> None:
    status, body, _ = _request(f"{server.url}/execution-parameters")
    parameters = json.loads(body)
    assert status == 200 and parameters["BatchStrategy"] == "SINGLE_RECORD"
    assert parameters["MaxConcurrentTransforms"] * parameters["MaxPayloadInMB"] <= 100


def test_hostile_requests_are_answered_and_the_server_stays_healthy(server, sample_videos: Path) -> None:
    video = _one_video_per_class(sample_videos)["MoveUp"].read_bytes()
    pickled = np.empty(1, dtype=object)
    pickled[0] = {"not": "clips"}
    hostile = {
        "empty body": (b"", "video/mp4", 400),
        "50 MB of random bytes": (np.random.default_rng(0).bytes(50 * 1024 * 1024), "video/mp4", 400),
        "truncated video": (video[: len(video) // 2], "video/mp4", 400),
        "npy of the wrong shape": (_npy(np.zeros((1, 8, 32, 32, 1), np.uint8)), "application/x-npy", 400),
        "float64 npy": (_npy(np.zeros((1, *CLIP_SHAPE))), "application/x-npy", 400),
        "pickled object array": (_npy(pickled), "application/x-npy", 400),
        "unknown content type": (video, "image/gif", 415),
    }
    for label, (body, content_type, expected) in hostile.items():
        status, answer, answer_type = _invoke(server, body, content_type)
        assert status == expected, f"{label}: {status} {answer[:300]!r}"
        assert answer_type == "application/json" and answer.count(b"\n") == 1, label
        assert json.loads(answer)["error"], label
        assert _request(f"{server.url}/ping")[0] == 200, f"unhealthy after {label}"
    assert _scratch_files(server) == []


def test_twenty_concurrent_requests_are_all_answered(server, sample_videos: Path) -> None:
    videos = list(_one_video_per_class(sample_videos).items()) * 5
    with ThreadPoolExecutor(max_workers=len(videos)) as pool:
        answers = list(pool.map(lambda item: (item[0], _invoke(server, item[1].read_bytes())), videos))
    assert len(answers) == 20
    for name, (status, body, _) in answers:
        assert status == 200 and json.loads(body)["predicted"] == name, body[:300]
    assert _request(f"{server.url}/ping")[0] == 200
    assert _scratch_files(server) == []


def test_docker_stop_ends_the_server_promptly_with_exit_code_0(
    docker_client, training_image: str, trained_model: Path, sample_videos: Path
) -> None:
    with serving_container(docker_client, training_image, trained_model) as running:
        wait_until_healthy(running.url)
        assert _invoke(running, _one_video_per_class(sample_videos)["MoveLeft"].read_bytes())[0] == 200
        started = time.monotonic()
        running.container.stop(timeout=10)  # SIGTERM, then SIGKILL (exit 137) after 10 s
        stopped_after = time.monotonic() - started
        running.container.reload()
        assert running.container.attrs["State"]["ExitCode"] == 0, running.logs()[-3000:]
        assert stopped_after < 8, stopped_after
        assert "Shutting down: Master" in running.logs()


def test_a_model_that_cannot_be_loaded_is_reported_by_ping(docker_client, training_image: str, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with serving_container(docker_client, training_image, tmp_path / "model") as running:
        deadline = time.monotonic() + 180
        while True:
            try:
                status, body, _ = _request(f"{running.url}/ping")
            except OSError:  # not listening yet
                status, body = None, b""
            if status == 500 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert status == 500 and "has no model.keras" in json.loads(body)["error"], body
        running.container.reload()
        assert running.container.status == "running"  # the reason is served; the server does not crash-loop
