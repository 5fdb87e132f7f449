#!/usr/bin/env bash
# The one test command (README "Run the tests"; .ci/run calls exactly this).
# Sets up .venv from the pinned requirements, builds both images through the air-gapped path, runs every test,
# slow and container tests included. Container tests fail (not skip) when Docker is unreachable.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r docker/requirements-dev.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .

exec .venv/bin/python -m pytest --run-slow --run-container "$@"
