"""The training image answers SageMaker's inference contract: endpoints, Batch Transform and asynchronous inference.

SageMaker starts the image as ``docker run <image> serve``; ``serve`` runs ``video3dcnn serve``, i.e. ``run_server``:
gunicorn with threaded workers, each holding its own copy of the model from /opt/ml/model, loaded after the fork
(Keras backends are not fork-safe) in a background thread, so that /ping answers while it loads. Routes:

- ``GET /ping``: 200 with an empty body once a worker of the server has loaded the model (SageMaker's health check
  may reach any worker: one still loading answers 200 too once another has loaded, since its invocations wait for
  its own model); 503 while none has; 500 with the reason when this worker cannot load it. An invocation that
  reaches a worker still loading waits for its model, at most ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` seconds.
- ``POST /invocations``: a whole video file (``content_types.VIDEO_TYPES``), decoded with the clip spec stored with the
  model through the same code as processing and ``video3dcnn predict``; or ``application/x-npy``, uint8 clips
  ``[N, T, H, W, C]`` of that spec. The answer is ``application/json`` or ``text/csv`` (one line) by ``Accept``.
- ``GET /execution-parameters``: what a Batch Transform job should send when it does not say.

A refused request gets a 4xx and a one-line JSON ``{"error": "..."}``; the worker carries on. A video body is written
to a temporary file in the server's scratch directory and removed when the request ends, the directory when the
server stops. SIGTERM stops gunicorn gracefully: requests in progress finish (at most ``GRACEFUL_TIMEOUT_S``), then
the server exits 0.

Pages: https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html and
https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-batch-code.html
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from video3dcnn.config import ClipSpec
from video3dcnn.content_types import CSV, JSON, NPY, OCTET_STREAM, REQUEST_TYPES, RESPONSE_TYPES, VIDEO_TYPES
from video3dcnn.contract import ServingEnv
from video3dcnn.errors import ToolkitError, VideoDecodeError
from video3dcnn.files import dumps_strict
from video3dcnn.predict import TrainedModel, decode_video, load_trained, predict_clips, rank, ranking_cells

logger = logging.getLogger(__name__)

MB = 1024 * 1024
CHUNK_BYTES = MB
READY_MARKER = ".model-loaded"  # in the scratch directory the workers share, made by the first to load the model
THREADS_PER_WORKER = 4  # one busy with a long video leaves others for /ping, which must answer within 2 s
GRACEFUL_TIMEOUT_S = 25  # SageMaker sends SIGKILL 30 s after SIGTERM
BATCH_PAYLOAD_LIMIT_MB = 100  # MaxPayloadInMB, and MaxConcurrentTransforms * MaxPayloadInMB, at most 100
BATCH_STRATEGY = "SINGLE_RECORD"  # one video per request (SplitType None)
ROUTES = "GET /ping, POST /invocations, GET /execution-parameters"


class RequestError(ToolkitError):
    """A request the server refuses, with the HTTP status to answer and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ModelSlot:
    """One worker's model: loaded once, in a background thread, then shared by the worker's threads.

    The model is called by one thread at a time (``lock``): decoding, the slow part, runs in parallel, while the model
    call stays clear of whatever a Keras backend keeps per model between calls.
    """

    def __init__(
        self, model_dir: Path, load: Callable[[Path], TrainedModel] = load_trained, ready_marker: Path | None = None
    ) -> None:
        self._model_dir = model_dir
        self._load = load
        self._ready_marker = ready_marker  # a file the workers share: created by the first to load the model
        self._done = threading.Event()
        self.lock = threading.Lock()
        self.trained: TrainedModel | None = None
        self.error: str | None = None

    def start(self, background: bool = True) -> None:
        """Load the model, in a daemon thread when ``background``."""
        if background:
            threading.Thread(target=self._run, name="model-loader", daemon=True).start()
        else:
            self._run()

    def _run(self) -> None:
        try:
            trained = self._load(self._model_dir)
            # A first call builds the backend's predict function before requests race to do it.
            predict_clips(trained.model, np.zeros((1, *trained.clip_spec.shape), np.uint8))
            self.trained = trained
            if self._ready_marker is not None:
                self._ready_marker.touch()
            logger.info("model loaded from %s: %d classes, clips %s", self._model_dir, len(trained.classes),
                        "x".join(map(str, trained.clip_spec.shape)))  # fmt: skip
        except ToolkitError as exc:
            self.error = str(exc)
            logger.error("cannot serve the model: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a bug, reported on every ping rather than a dead worker
            self.error = f"internal error: {type(exc).__name__}: {exc}"
            logger.exception("cannot serve the model")
        finally:
            self._done.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until loading ended (loaded or failed); False on timeout."""
        return self._done.wait(timeout_s)

    def check_health(self) -> None:
        """Return when the server can answer: this worker's model is loaded, or it still loads while another
        worker's is (its invocations wait for it).

        Raises:
            RequestError: 503 while no worker has loaded the model, 500 when this worker cannot load it.
        """
        if self.trained is None and self.error is None and self._ready_marker and self._ready_marker.exists():
            return
        self.get()

    def get(self, wait_s: float = 0) -> TrainedModel:
        """The loaded model, waiting up to ``wait_s`` seconds for it.

        Raises:
            RequestError: 503 while the model loads, 500 with the reason when it could not be loaded.
        """
        if self.trained is None and wait_s > 0:
            self._done.wait(wait_s)
        if self.trained is not None:
            return self.trained
        if self.error is not None:
            raise RequestError(500, f"the model cannot be loaded: {self.error}")
        raise RequestError(503, "the model is still loading")


def parse_clips(data: bytes, spec: ClipSpec) -> np.ndarray:
    """uint8 clips ``[N, T, H, W, C]`` of ``spec`` from the bytes of an .npy file, or a RequestError saying why not.

    The header is checked before any array is read, so a header claiming a huge shape allocates nothing, and the
    array is read with ``allow_pickle=False``: an object array (a pickle) is refused, never unpickled.
    """
    from numpy.lib import format as npy_format

    stream = io.BytesIO(data)
    try:
        version = npy_format.read_magic(stream)
        read_header = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f".npy format version {version[0]}.{version[1]} (numpy.save writes 1.0)")
        shape, _, dtype = read_header(stream)
    except ValueError as exc:
        raise RequestError(400, f"not an .npy array (write one with numpy.save): {exc}") from None
    if dtype.hasobject:
        raise RequestError(400, "object arrays (pickled Python objects) are refused: send uint8 clips")
    if dtype != np.uint8:
        raise RequestError(400, f"clips must be uint8 (pixel values 0-255), got {dtype}")
    expected = list(spec.shape)
    if len(shape) != 5 or list(shape[1:]) != expected or shape[0] < 1:
        wanted = ", ".join(map(str, expected))
        message = f"clips must have shape [N, {wanted}] (N >= 1, the model's clip spec), got {list(shape)}"
        raise RequestError(400, message)
    size, declared = len(data) - stream.tell(), int(np.prod(shape))
    if size != declared:
        raise RequestError(400, f"the .npy data holds {size} bytes, not the {declared} its header declares")
    stream.seek(0)
    return np.load(stream, allow_pickle=False)


def answer_json(probabilities: np.ndarray, classes: tuple[str, ...], top_k: int) -> str:
    """The JSON answer: predicted class and probability, the top ``top_k``, the clip count, every clip's scores."""
    ranked = rank(probabilities.mean(axis=0), classes)
    body = {
        "predicted": ranked[0][0],
        "probability": ranked[0][1],
        "top_k": [{"class": name, "probability": probability} for name, probability in ranked[:top_k]],
        "clips": len(probabilities),
        "classes": list(classes),
        "clip_probabilities": probabilities.astype(float).round(6).tolist(),
    }
    return dumps_strict(body, separators=(",", ":"))  # a NaN probability (a broken model) as null, not bare NaN


def answer_csv(probabilities: np.ndarray, classes: tuple[str, ...], top_k: int) -> str:
    """One CSV line, as ``video3dcnn predict`` writes its rows less the path and error cells:
    ``predicted,probability[,top2,top2_probability...],clips``. No line break: Batch Transform's ``AssembleWith=Line``
    adds one after every record.
    """
    buffer = io.StringIO()
    ranked = rank(probabilities.mean(axis=0), classes)
    csv.writer(buffer, lineterminator="").writerow([*ranking_cells(ranked, top_k), str(len(probabilities))])
    return buffer.getvalue()


def error_response(status: int, message: str) -> Response:
    """A one-line JSON ``{"error": message}`` with ``status``."""
    return Response(json.dumps({"error": " ".join(message.split())}) + "\n", status=status, mimetype=JSON)


class InferenceApp:
    """The WSGI application of one worker: routes, content types, limits and the model.

    Args:
        env: the serving settings (model directory, payload limit, top-k, workers for execution-parameters).
        scratch_dir: where request bodies are written while they are decoded.
        load: loads a model directory (``predict.load_trained``).
        background: load the model in a thread (the server) or before returning (tests).
    """

    def __init__(
        self,
        env: ServingEnv,
        scratch_dir: Path,
        load: Callable[[Path], TrainedModel] = load_trained,
        background: bool = True,
    ) -> None:
        self.env = env
        self.scratch_dir = Path(scratch_dir)
        self.slot = ModelSlot(env.model_dir, load, self.scratch_dir / READY_MARKER)
        self.slot.start(background)
        self._routes = Map(
            [
                Rule("/ping", endpoint="ping", methods=["GET"]),
                Rule("/invocations", endpoint="invocations", methods=["POST"]),
                Rule("/execution-parameters", endpoint="execution_parameters", methods=["GET"]),
            ]
        )

    def __call__(self, environ: dict, start_response: Callable) -> Iterator[bytes]:
        return self.dispatch(Request(environ))(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Answer ``request``; every failure becomes a JSON error response, never an exception."""
        started = time.monotonic()
        try:
            endpoint, _ = self._routes.bind_to_environ(request.environ).match()
            response = getattr(self, f"_{endpoint}")(request)
        except RequestError as exc:
            response = error_response(exc.status, str(exc))
        except HTTPException as exc:  # no such route, wrong method, a body cut short
            routing = exc.code in (404, 405)
            reason = f"no route {request.method} {request.path}: use {ROUTES}" if routing else exc.description
            response = error_response(exc.code or 400, reason)
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                response.headers["Allow"] = ", ".join(exc.valid_methods)
        except Exception as exc:  # noqa: BLE001 - a bug: answered, logged with its traceback, the worker carries on
            logger.exception("internal error answering %s %s", request.method, request.path)
            response = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
        if request.path != "/ping" or response.status_code not in (200, 503):  # health checks come every few s
            level = logging.INFO if response.status_code < 400 else logging.WARNING
            detail = response.get_data(as_text=True).strip() if response.status_code >= 400 else ""
            logger.log(level, "%s %s %s -> %d in %.3f s %s", request.method, request.path, request.mimetype or "-",
                       response.status_code, time.monotonic() - started, detail)  # fmt: skip
        return response

    def _ping(self, request: Request) -> Response:
        self.slot.check_health()
        return Response(status=200)

    def _execution_parameters(self, request: Request) -> Response:
        concurrent = min(self.env.workers, BATCH_PAYLOAD_LIMIT_MB)
        payload = max(1, min(self.env.max_payload_mb, BATCH_PAYLOAD_LIMIT_MB // concurrent))
        body = {"MaxConcurrentTransforms": concurrent, "BatchStrategy": BATCH_STRATEGY, "MaxPayloadInMB": payload}
        return Response(json.dumps(body), mimetype=JSON)

    def _invocations(self, request: Request) -> Response:
        content_type = request.mimetype or OCTET_STREAM  # no Content-Type: bytes of unknown kind
        if content_type not in REQUEST_TYPES:
            accepted = ", ".join(REQUEST_TYPES)
            raise RequestError(415, f"content type {content_type!r} is not accepted: send one of {accepted}")
        accept = response_type(request)
        # Another worker may have answered /ping while this one still loads: the request waits rather than fail.
        trained = self.slot.get(wait_s=self.env.timeout_s)
        if content_type == NPY:
            clips = parse_clips(b"".join(self._body_chunks(request)), trained.clip_spec)
        else:
            clips = self._decode_body(request, content_type, trained)
        with self.slot.lock:
            probabilities = predict_clips(trained.model, clips)
        top_k = min(self.env.top_k, len(trained.classes))
        if accept == CSV:
            return Response(answer_csv(probabilities, trained.classes, top_k), mimetype=CSV)
        return Response(answer_json(probabilities, trained.classes, top_k), mimetype=JSON)

    def _body_chunks(self, request: Request) -> Iterator[bytes]:
        """The request body in chunks, refused (413) past the payload limit and (400) when empty."""
        limit = self.env.max_payload_mb * MB
        too_large = f"the request body is over the {self.env.max_payload_mb} MB limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)"
        if request.content_length is not None and request.content_length > limit:
            raise RequestError(413, too_large)
        total = 0
        while chunk := request.stream.read(CHUNK_BYTES):
            total += len(chunk)
            if total > limit:
                raise RequestError(413, too_large)
            yield chunk
        if total == 0:
            raise RequestError(400, "empty request body: send a video file, or uint8 clips as application/x-npy")

    def _decode_body(self, request: Request, content_type: str, trained: TrainedModel) -> np.ndarray:
        """Write the video body to a temporary file (removed however this ends) and decode it like processing."""
        suffix = VIDEO_TYPES[content_type]
        with tempfile.NamedTemporaryFile(dir=self.scratch_dir, prefix="request-", suffix=suffix) as handle:
            for chunk in self._body_chunks(request):
                handle.write(chunk)
            handle.flush()
            try:
                return decode_video(trained, Path(handle.name))
            except VideoDecodeError as exc:
                reason = str(exc).replace(f"{handle.name}: ", "").replace(handle.name, "the video")
                raise RequestError(400, f"the request body is not a video that can be decoded: {reason}") from None


def response_type(request: Request) -> str:
    """``application/json`` or ``text/csv``, the best the ``Accept`` header allows (JSON when it names none).

    Raises:
        RequestError: 406 when ``Accept`` allows neither.
    """
    header = request.headers.get("Accept", "").strip()
    if not header:
        return JSON
    best = request.accept_mimetypes.best_match(RESPONSE_TYPES)
    if best is None:
        raise RequestError(406, f"cannot answer as {header!r}: accept {' or '.join(RESPONSE_TYPES)}")
    return best


def gunicorn_settings(env: ServingEnv, host: str = "0.0.0.0") -> dict:
    """The gunicorn settings for ``env``: threaded workers that load the model after the fork, graceful SIGTERM."""
    return {
        "bind": [f"{host}:{env.port}"],
        "workers": env.workers,
        "worker_class": "gthread",
        "threads": THREADS_PER_WORKER,
        "timeout": env.timeout_s,
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "preload_app": False,  # each worker imports Keras and loads the model itself
        "control_socket_disable": True,  # gunicorn 25+ would create ~/.gunicorn/gunicorn.ctl
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,  # heartbeats off the container's disk
        "proc_name": "video3dcnn-serve",
        "accesslog": None,  # the app logs each invocation
        "loglevel": "info",
    }


def run_server(env: ServingEnv, host: str = "0.0.0.0") -> None:
    """Serve until SIGTERM or SIGINT (gunicorn's graceful stop), then remove the scratch directory.

    Raises:
        SystemExit: gunicorn's exit: 0 after a graceful stop, non-zero when it could not start (port in use).
    """
    from gunicorn.app.base import BaseApplication

    scratch_dir = Path(tempfile.mkdtemp(prefix="video3dcnn-serve-"))
    server_pid = os.getpid()

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_settings(env, host).items():
                self.cfg.set(key, value)

        def load(self) -> InferenceApp:  # called in each worker, after the fork
            return InferenceApp(env, scratch_dir)

    logger.info("serving %s on %s:%d with %d workers x %d threads", env.model_dir, host, env.port, env.workers,
                THREADS_PER_WORKER)  # fmt: skip
    try:
        _Server().run()
    finally:
        if os.getpid() == server_pid:  # a worker leaves through here too when it exits
            shutil.rmtree(scratch_dir, ignore_errors=True)
