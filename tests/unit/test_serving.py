"""The inference server's WSGI app, in-process through werkzeug's test client: routes, content types, limits, errors.

A real (untrained) model answers; what a video or an .npy body predicts is compared with ``video3dcnn predict``'s own
path (``predict_videos``) and with the model called directly, so the server cannot drift from predict. After every
test the scratch directory must be empty: no request leaves a file behind.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from trainkit import write_model_dir
from videos import write_index_video
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from video3dcnn.config import ClipSpec
from video3dcnn.contract import ServingEnv, serving_env
from video3dcnn.errors import ContractError
from video3dcnn.predict import csv_row, load_trained, predict_clips, predict_videos
from video3dcnn.serving import READY_MARKER, InferenceApp, gunicorn_settings, parse_clips

SPEC = ClipSpec(frames=4, height=16, width=16)
CLASSES = ("Left", "Right", "Up")
MP4 = "video/mp4"
NPY = "application/x-npy"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"), SPEC, CLASSES)


@pytest.fixture(scope="module")
def trained(model_dir):
    return load_trained(model_dir)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        "mp4": write_index_video(root / "h264.mp4", 30, codec="h264", height=48, width=64).path,
        "avi": write_index_video(root / "mjpg.avi", 20, codec="mjpg", height=48, width=64).path,
        "mkv": write_index_video(root / "h264.mkv", 24, codec="h264", height=48, width=64).path,
    }


@pytest.fixture
def scratch(tmp_path) -> Path:
    directory = tmp_path / "scratch"
    directory.mkdir()
    yield directory
    # every request cleaned up after itself; only the workers' shared marker of a loaded model stays
    assert [path.name for path in directory.iterdir() if path.name != READY_MARKER] == []


def _app(model_dir: Path, scratch: Path, trained=None, **settings) -> InferenceApp:
    env = ServingEnv(model_dir=model_dir, **settings)
    return InferenceApp(env, scratch, load=(lambda _: trained) if trained else load_trained, background=False)


@pytest.fixture
def client(model_dir, scratch, trained) -> Client:
    return Client(_app(model_dir, scratch, trained))


def _post(client: Client, body: bytes, content_type: str | None = MP4, accept: str | None = None, **kwargs):
    headers = {key: value for key, value in (("Content-Type", content_type), ("Accept", accept)) if value is not None}
    return client.post("/invocations", data=body, headers=headers, **kwargs)


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _error(response) -> str:
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    assert text.count("\n") == 1 and text.endswith("\n")  # one line
    return json.loads(text)["error"]


def _expected(trained, path: Path):
    [prediction] = predict_videos(trained, [path])
    return prediction


# --- health and batch parameters ---


def test_ping_is_200_with_an_empty_body_once_loaded(client):
    response = client.get("/ping")
    assert response.status_code == 200 and response.get_data() == b""


def test_ping_is_503_while_the_model_loads_and_an_invocation_waits_for_it(model_dir, scratch, trained, videos):
    release = threading.Event()

    def slow_load(_):
        release.wait(30)
        return trained

    app = InferenceApp(ServingEnv(model_dir=model_dir), scratch, load=slow_load, background=True)
    client = Client(app)
    response = client.get("/ping")
    assert response.status_code == 503 and "loading" in _error(response)
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(_post(Client(app), videos["avi"].read_bytes())))
    waiting.start()
    waiting.join(1.0)
    assert waiting.is_alive() and answers == []  # held, not refused, while the model loads
    release.set()
    waiting.join(60)
    assert answers[0].status_code == 200
    assert client.get("/ping").status_code == 200


def test_ping_of_a_worker_still_loading_is_200_once_another_worker_has_loaded_the_model(model_dir, scratch, trained):
    release = threading.Event()
    env = ServingEnv(model_dir=model_dir)
    loading = InferenceApp(env, scratch, load=lambda _: release.wait(30) and trained, background=True)
    try:
        assert Client(loading).get("/ping").status_code == 503  # no worker has the model yet
        InferenceApp(env, scratch, load=lambda _: trained, background=False)  # another worker of the server
        assert Client(loading).get("/ping").status_code == 200
        assert loading.slot.trained is None  # still loading: its invocations wait for it
    finally:
        release.set()
        assert loading.slot.wait(30)


def test_an_invocation_gives_up_waiting_after_the_timeout(model_dir, scratch, trained):
    release = threading.Event()
    app = InferenceApp(ServingEnv(model_dir=model_dir, timeout_s=1), scratch,
                       load=lambda _: release.wait(30) and trained, background=True)  # fmt: skip
    try:
        response = _post(Client(app), b"x")
        assert response.status_code == 503 and "still loading" in _error(response)
    finally:
        release.set()
        assert app.slot.wait(30)  # no loader thread left running into interpreter exit


def test_a_model_that_cannot_be_loaded_fails_ping_with_the_reason(tmp_path, scratch):
    client = Client(_app(tmp_path / "empty", scratch))
    for response in (client.get("/ping"), _post(client, b"video")):
        assert response.status_code == 500
        assert "has no model.keras" in _error(response)


@pytest.mark.parametrize(
    ("workers", "max_payload_mb", "expected"),
    [(2, 1024, (2, 50)), (4, 6, (4, 6)), (1, 1024, (1, 100)), (300, 1024, (100, 1))],
    ids=["two-workers", "payload-limit", "one-worker", "many-workers"],
)
def test_execution_parameters_keep_concurrency_times_payload_within_100_mb(
    model_dir, scratch, trained, workers, max_payload_mb, expected
):
    client = Client(_app(model_dir, scratch, trained, workers=workers, max_payload_mb=max_payload_mb))
    body = client.get("/execution-parameters").get_json()
    concurrent, payload = expected
    assert body == {"MaxConcurrentTransforms": concurrent, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": payload}
    assert body["MaxConcurrentTransforms"] * body["MaxPayloadInMB"] <= 100


# --- videos ---


def test_a_video_is_answered_exactly_as_predict_answers_it(client, trained, videos):
    response = _post(client, videos["mp4"].read_bytes())
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    expected = _expected(trained, videos["mp4"])
    assert body["predicted"] == expected.predicted
    assert body["probability"] == pytest.approx(expected.probability, abs=1e-6)
    assert [item["class"] for item in body["top_k"]] == [name for name, _ in expected.ranked]
    assert body["clips"] == expected.clips == 1 and body["classes"] == list(CLASSES)
    by_class = dict(expected.ranked)
    assert np.allclose(np.mean(body["clip_probabilities"], axis=0), [by_class[c] for c in CLASSES], atol=1e-5)


def test_csv_answer_is_predicts_row_without_path_and_error(client, trained, videos):
    response = _post(client, videos["mp4"].read_bytes(), accept="text/csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    line = response.get_data(as_text=True)
    assert "\n" not in line  # Batch Transform's AssembleWith=Line adds the line break
    expected = csv_row(_expected(trained, videos["mp4"]), top_k=3)
    assert next(csv.reader([line])) == expected[1:-1]


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("avi", "video/x-msvideo"),
        ("mkv", "video/x-matroska"),
        ("mp4", "application/octet-stream"),
        ("avi", None),  # no Content-Type: bytes of unknown kind, which FFmpeg recognises
        ("avi", MP4),  # a wrong declared type: the bytes decide the container
        ("mp4", "video/mp4; codecs=avc1"),
    ],
    ids=["avi", "mkv", "octet-stream", "no-type", "avi-declared-mp4", "type-with-parameters"],
)
def test_every_video_type_decodes_like_predict(client, trained, videos, kind, content_type):
    response = _post(client, videos[kind].read_bytes(), content_type=content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    expected = _expected(trained, videos[kind])
    assert response.get_json()["probability"] == pytest.approx(expected.probability, abs=1e-6)


def test_sliding_windows_give_every_clip_its_scores(tmp_path, scratch, videos):
    spec = ClipSpec(frames=4, height=16, width=16, sampling="sliding", clip_stride=6)
    model_dir = write_model_dir(tmp_path / "sliding", spec, CLASSES)
    trained = load_trained(model_dir)
    body = _post(Client(_app(model_dir, scratch, trained)), videos["mp4"].read_bytes()).get_json()
    expected = _expected(trained, videos["mp4"])
    assert body["clips"] == len(body["clip_probabilities"]) == expected.clips > 1
    assert body["probability"] == pytest.approx(expected.probability, abs=1e-6)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("text/*", "text/csv"),
        ("text/csv;q=0.5, application/json", "application/json"),
        ("application/json;q=0.1, text/csv", "text/csv"),
    ],
)
def test_accept_chooses_json_or_csv(client, videos, accept, expected):
    response = _post(client, videos["avi"].read_bytes(), accept=accept)
    assert response.status_code == 200 and response.mimetype == expected


@pytest.mark.parametrize("top_k", [1, 2, 9])
def test_top_k_lists_at_most_the_class_count(model_dir, scratch, trained, videos, top_k):
    client = Client(_app(model_dir, scratch, trained, top_k=top_k))
    shown = min(top_k, len(CLASSES))
    assert len(_post(client, videos["avi"].read_bytes()).get_json()["top_k"]) == shown
    line = _post(client, videos["avi"].read_bytes(), accept="text/csv").get_data(as_text=True)
    assert len(line.split(",")) == 2 * shown + 1


# --- clips the caller decoded ---


def test_npy_clips_are_predicted_as_the_model_predicts_them(client, trained):
    clips = np.random.default_rng(0).integers(0, 256, (3, *SPEC.shape), dtype=np.uint8)
    body = _post(client, _npy(clips), content_type=NPY).get_json()
    direct = predict_clips(trained.model, clips)
    assert body["clips"] == 3
    assert np.allclose(body["clip_probabilities"], direct, atol=1e-5)
    assert body["probability"] == pytest.approx(direct.mean(axis=0).max(), abs=1e-6)


def test_fortran_ordered_clips_are_read_right(client, trained):
    clips = np.random.default_rng(1).integers(0, 256, (2, *SPEC.shape), dtype=np.uint8)
    body = _post(client, _npy(np.asfortranarray(clips)), content_type=NPY).get_json()
    assert np.allclose(body["clip_probabilities"], predict_clips(trained.model, clips), atol=1e-5)


class _Marker:
    """Unpickling this creates a file: proof of whether a body was ever unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickled_object_array_is_refused_without_unpickling(client, tmp_path):
    pickle.loads(pickle.dumps(_Marker(tmp_path / "control")))
    assert (tmp_path / "control").exists()  # the marker does what it claims when unpickled
    array = np.empty(1, dtype=object)
    array[0] = _Marker(tmp_path / "unpickled")
    response = _post(client, _npy(array, allow_pickle=True), content_type=NPY)
    assert response.status_code == 400 and "object arrays" in _error(response)
    assert not (tmp_path / "unpickled").exists()


def _npy_header_only(shape: tuple, descr: str = "|u1") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_npy(np.zeros((2, 4, 16, 16, 1), np.uint8)), "shape [N, 4, 16, 16, 3]"),
        (_npy(np.zeros((4, 16, 16, 3), np.uint8)), "got [4, 16, 16, 3]"),
        (_npy(np.zeros((0, 4, 16, 16, 3), np.uint8)), "N >= 1"),
        (_npy(np.zeros((1, 4, 16, 16, 3), np.float64)), "got float64"),
        (_npy(np.zeros((1, 4, 16, 16, 3), np.uint8))[:-10], "not the 3072 its header declares"),
        (_npy_header_only((10**12, 4, 16, 16, 3)), "its header declares"),
        (b"PK\x03\x04 an npz archive", "not an .npy array"),
        (b"just some bytes", "not an .npy array"),
    ],
    ids=["wrong-channels", "no-batch-axis", "no-clips", "float64", "truncated", "huge-header", "npz", "not-npy"],
)
def test_bad_npy_bodies_are_refused_with_the_reason(client, body, reason):
    response = _post(client, body, content_type=NPY)
    assert response.status_code == 400
    assert reason in _error(response)


def test_parse_clips_returns_the_array():
    clips = np.arange(2 * 4 * 16 * 16 * 3, dtype=np.uint64).astype(np.uint8).reshape(2, *SPEC.shape)
    assert np.array_equal(parse_clips(_npy(clips), SPEC), clips)


# --- refused requests ---


def test_an_undecodable_video_is_a_400_naming_no_server_path(client, scratch):
    response = _post(client, np.random.default_rng(0).bytes(200_000))
    assert response.status_code == 400
    reason = _error(response)
    assert "not a video that can be decoded" in reason and str(scratch) not in reason


def test_a_truncated_video_is_a_400(client, videos):
    data = videos["mp4"].read_bytes()
    response = _post(client, data[: len(data) // 3])
    assert response.status_code == 400 and "cannot" in _error(response)


@pytest.mark.parametrize("content_type", ["image/png", "text/plain", "application/json", "video/x-flv"])
def test_an_unsupported_content_type_is_a_415_listing_the_accepted_ones(client, content_type):
    response = _post(client, b"data", content_type=content_type)
    assert response.status_code == 415
    assert "video/mp4" in _error(response) and NPY in _error(response)


def test_an_unsupported_accept_is_a_406(client, videos):
    response = _post(client, videos["avi"].read_bytes(), accept="image/png")
    assert response.status_code == 406 and "text/csv" in _error(response)


@pytest.mark.parametrize("content_type", [MP4, NPY])
def test_an_empty_body_is_a_400(client, content_type):
    response = _post(client, b"", content_type=content_type)
    assert response.status_code == 400 and "empty request body" in _error(response)


class _Unreadable(io.BytesIO):
    def read(self, *args):
        raise AssertionError("the body was read")

    readinto = readline = read


def test_a_declared_length_over_the_limit_is_a_413_before_reading(model_dir, scratch, trained):
    app = _app(model_dir, scratch, trained, max_payload_mb=1)
    builder = EnvironBuilder(path="/invocations", method="POST", input_stream=_Unreadable(), content_type=MP4)
    environ = builder.get_environ()
    environ["CONTENT_LENGTH"] = str(1024 * 1024 + 1)
    response = app.dispatch(Request(environ))
    assert response.status_code == 413 and "1 MB limit" in _error(response)


def test_a_chunked_body_over_the_limit_is_a_413(model_dir, scratch, trained):
    app = _app(model_dir, scratch, trained, max_payload_mb=1)
    builder = EnvironBuilder(
        path="/invocations",
        method="POST",
        input_stream=io.BytesIO(b"\0" * (3 * 1024 * 1024)),
        headers={"Content-Type": MP4, "Transfer-Encoding": "chunked"},
    )
    environ = builder.get_environ()
    environ["wsgi.input_terminated"] = True  # what gunicorn says of a chunked body: no Content-Length
    environ.pop("CONTENT_LENGTH", None)
    response = app.dispatch(Request(environ))
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/", 404), ("GET", "/invocations", 405), ("POST", "/ping", 405)]
)
def test_unknown_routes_and_methods_get_json_errors(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status and "POST /invocations" in _error(response)


def test_an_internal_error_is_a_500_and_the_next_request_is_served(client, videos, monkeypatch):
    import video3dcnn.serving as serving

    real = serving.decode_video
    monkeypatch.setattr(serving, "decode_video", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    response = _post(client, videos["avi"].read_bytes())
    assert response.status_code == 500 and "RuntimeError: boom" in _error(response)
    monkeypatch.setattr(serving, "decode_video", real)
    assert _post(client, videos["avi"].read_bytes()).status_code == 200


def test_concurrent_requests_share_one_model(client, trained, videos):
    data = videos["avi"].read_bytes()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(_post(client, data).status_code)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200] * 6


# --- settings ---


def test_serving_env_defaults_and_variables(tmp_path):
    env = serving_env({}, root=tmp_path)
    assert env.model_dir == tmp_path / "model" and env.port == 8080 and env.timeout_s == 60
    assert env.max_payload_mb == 1024 and env.top_k == 5 and env.workers >= 1
    variables = {
        "SAGEMAKER_BIND_TO_PORT": "9090",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "120",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "6",
        "VIDEO3DCNN_TOP_K": "2",
        "SAGEMAKER_BASE_DIR": str(tmp_path / "base"),
    }
    assert serving_env(variables) == ServingEnv(tmp_path / "base/model", 9090, 3, 120, 6, 2)


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_serving_variable_is_named(value):
    with pytest.raises(ContractError, match=f"SAGEMAKER_MODEL_SERVER_WORKERS='{value}'"):
        serving_env({"SAGEMAKER_MODEL_SERVER_WORKERS": value}, root=Path("/x"))


def test_gunicorn_settings_load_the_model_in_each_worker(tmp_path):
    settings = gunicorn_settings(ServingEnv(tmp_path, port=9000, workers=3, timeout_s=90))
    assert settings["bind"] == ["0.0.0.0:9000"] and settings["workers"] == 3 and settings["timeout"] == 90
    assert settings["preload_app"] is False and settings["worker_class"] == "gthread" and settings["threads"] > 1
    assert settings["control_socket_disable"] is True


def test_serve_refuses_bad_settings_in_one_line_before_starting(monkeypatch, capsys):
    from video3dcnn.cli import EXIT_USER_ERROR, main

    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "many")
    assert main(["serve"]) == EXIT_USER_ERROR
    monkeypatch.delenv("SAGEMAKER_MODEL_SERVER_WORKERS")
    assert main(["serve", "--workers", "0"]) == EXIT_USER_ERROR
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "SAGEMAKER_MODEL_SERVER_WORKERS='many'" in errors[0] and "--workers" in errors[1]


# --- the real server (gunicorn), natively ---


@pytest.mark.slow
def test_video3dcnn_serve_answers_then_stops_cleanly_on_sigterm(model_dir, videos, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from localservers import free_port

    port = free_port()
    temp, home = tmp_path / "tmp", tmp_path / "home"
    temp.mkdir()
    home.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "HOME": str(home), "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    command = [sys.executable, "-m", "video3dcnn", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:  # not listening yet, or a 503 (HTTPError), or slow while a worker imports Keras
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.5)
        request = urllib.request.Request(f"{url}/invocations", data=videos["avi"].read_bytes(),
                                         headers={"Content-Type": "video/x-msvideo", "Accept": "text/csv"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.read().decode().split(",")[0] in CLASSES
        [serve_dir] = list(temp.iterdir())  # the scratch directory, while serving
        server.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert server.wait(timeout=30) == 0
        assert time.monotonic() - started < 10
    finally:
        if server.poll() is None:
            server.kill()
        print(server.stdout.read())
    assert not serve_dir.exists() and list(temp.iterdir()) == []
    assert not (home / ".gunicorn").exists()  # gunicorn's control socket stays off


def test_the_server_process_imports_no_keras_before_it_forks():
    """gunicorn's master forks the workers: a Keras backend imported before the fork would be shared, unsafely."""
    import subprocess
    import sys

    probe = (
        "import sys, video3dcnn.cli.serve, video3dcnn.serving, gunicorn.app.base; "
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'jax', 'torch', 'cv2')]; "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
