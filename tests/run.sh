#!/usr/bin/env bash
# The one test command (README "Run the tests"; .ci/run calls exactly this).
# Sets up .venv from the pinned requirements, builds both images through the air-gapped path, runs every test,
# slow and container tests included. Container tests fail (not skip) when Docker is unreachable.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need (Debian/Ubuntu, run as root in CI): mmdebstrap builds the offline base image,
# docker-registry serves the local registry of the push test.
SYSTEM_PACKAGES=(mmdebstrap docker-registry)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r docker/requirements-dev.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .

exec .venv/bin/python -m pytest --run-slow --run-container "$@"
