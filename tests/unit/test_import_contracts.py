"""The package's layering holds: ``lint-imports`` (import-linter) keeps every contract in pyproject.toml.

The contracts forbid import circles, fix the layers (the CLI on top, then the inference server, the jobs, their parts,
the shared building blocks, the contract and the errors at the bottom), keep Keras, TensorFlow and matplotlib out of
the processing side and PyAV and OpenCV out of ``launch``, and leave TensorFlow to ``distribute``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import video3dcnn

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_lint_imports_keeps_every_contract() -> None:
    assert LINT_IMPORTS.is_file(), "import-linter is missing: pip install -r docker/requirements-dev.txt"
    package_root = str(Path(video3dcnn.__file__).resolve().parents[1])  # the package these tests import
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout and "BROKEN" not in result.stdout
