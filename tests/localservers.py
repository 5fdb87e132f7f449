"""Local stand-ins for remote services, bound to 127.0.0.1 only: a free port and a moto server (all AWS services).

Tests point boto3, the AWS CLI and the SageMaker SDK at the server through ``AWS_ENDPOINT_URL``. The server's
recorder keeps the raw body of every request, so a test can read exactly what a client sent even where moto's
describe calls do not echo a field.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

LOCALHOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
SIGV4_SCOPE = re.compile(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/aws4_request")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


class MotoServer:
    """A running ``moto.server.ThreadedMotoServer`` and the calls tests make on its control API."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log in the captured output
        self.port = free_port()
        self.endpoint = f"http://{LOCALHOST}:{self.port}"
        self._server = ThreadedMotoServer(ip_address=LOCALHOST, port=self.port, verbose=False)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._post("/moto-api/recorder/stop-recording")
        self._server.stop()

    def _post(self, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.endpoint + path, method="POST"), timeout=10).close()

    def reset(self) -> None:
        """Forget every resource and start a fresh request recording."""
        self._post("/moto-api/reset")
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")

    def recording(self) -> list[dict]:
        """Every request since the last ``reset``: ``headers``, ``method``, ``url``, ``body``, ``body_encoded``."""
        with urllib.request.urlopen(self.endpoint + "/moto-api/recorder/download-recording", timeout=10) as response:
            return [json.loads(line) for line in response.read().decode("utf-8").splitlines() if line.strip()]

    def signed_scopes(self) -> set[tuple[str, str]]:
        """``(region, service)`` from the SigV4 credential scope of every recorded request."""
        return {SIGV4_SCOPE.search(entry["headers"]["Authorization"]).groups() for entry in self.recording()}

    def signed_regions(self) -> set[str]:
        """The region every recorded request was signed for."""
        return {region for region, _ in self.signed_scopes()}

    def requests(self, target: str) -> list[dict]:
        """JSON bodies of the recorded requests whose ``X-Amz-Target`` ends with ``target`` (e.g. CreateTrainingJob)."""
        bodies = []
        for entry in self.recording():
            if entry["headers"].get("X-Amz-Target", "").endswith("." + target):
                body = base64.b64decode(entry["body"]) if entry["body_encoded"] else entry["body"]
                bodies.append(json.loads(body))
        return bodies

    def set_env(self, monkeypatch: pytest.MonkeyPatch, region: str | None = REGION) -> None:
        """Point every AWS client of this process and its children at the server, with dummy credentials."""
        monkeypatch.setenv("AWS_ENDPOINT_URL", self.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        if region:
            monkeypatch.setenv("AWS_DEFAULT_REGION", region)


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """Run a moto server on 127.0.0.1 for the duration of the block.

    The recorder writes ``moto_recording`` in the working directory, so tests using ``requests`` chdir to a temporary
    directory first.
    """
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def moto_module() -> Iterator[MotoServer]:
    """One moto server for a test module (import this fixture together with ``moto``)."""
    with moto_server() as server:
        yield server


@pytest.fixture
def moto(moto_module: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoServer:
    """The module's moto server, emptied, with this process's AWS clients pointed at it (region us-east-1)."""
    monkeypatch.chdir(tmp_path)  # the recorder's file
    moto_module.set_env(monkeypatch)
    moto_module.reset()
    return moto_module
