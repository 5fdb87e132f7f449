"""``video3dcnn serve``: answer SageMaker's inference contract (``docker run <training image> serve`` runs this)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a trained model over HTTP as SageMaker endpoints and Batch Transform expect",
        description=(
            "Run the inference server SageMaker starts with 'docker run <image> serve': GET /ping, "
            "POST /invocations (a video file, or uint8 clips as application/x-npy; answers application/json or "
            "text/csv) and GET /execution-parameters. Settings come from SAGEMAKER_BIND_TO_PORT (8080), "
            "SAGEMAKER_MODEL_SERVER_WORKERS (one per core), SAGEMAKER_MODEL_SERVER_TIMEOUT (60), "
            "SAGEMAKER_MAX_PAYLOAD_IN_MB (1024) and VIDEO3DCNN_TOP_K (5); the options below override them."
        ),
    )
    parser.add_argument("--model-dir", type=Path, help="the trained model directory (default: /opt/ml/model)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (default: SAGEMAKER_BIND_TO_PORT or 8080)")
    parser.add_argument("--workers", type=int, help="server processes, one model each (default: one per core)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from video3dcnn.contract import serving_env
    from video3dcnn.errors import ConfigError
    from video3dcnn.serving import run_server

    env = serving_env()
    overrides = {"model_dir": args.model_dir, "port": args.port, "workers": args.workers}
    for name in ("port", "workers"):
        if overrides[name] is not None and overrides[name] < 1:
            raise ConfigError(f"--{name} must be at least 1")
    env = dataclasses.replace(env, **{key: value for key, value in overrides.items() if value is not None})
    run_server(env, args.host)
    return 0
