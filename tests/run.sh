#!/usr/bin/env bash
# The one test command (README "Run the tests"; .ci/run calls exactly this).
# Sets up .venv from the pinned requirements, builds both images through the air-gapped path, runs every test,
# slow and container tests included. Container tests fail (not skip) when Docker is unreachable.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need (Debian/Ubuntu, run as root in CI): mmdebstrap builds the offline base image,
# docker-registry serves the local registry of the push test, docker-compose (v1.29) runs the compose and SDK tests
# (docker/install-compose-v2.sh adds Compose v2 below).
SYSTEM_PACKAGES=(mmdebstrap docker-registry docker-compose)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Docker first, and disk: a CI machine once ran out of space half way through the training image's build.
docker info >/dev/null 2>&1 || { echo "tests/run.sh: cannot reach the Docker daemon; the container tests need it" >&2; exit 1; }
to_build=()
[ -n "${VIDEO3DCNN_PROCESSING_IMAGE:-}" ] || to_build+=(processing)
[ -n "${VIDEO3DCNN_TRAINING_IMAGE:-}" ] || to_build+=(training)
check_disk() {
    # Free space needed, in GB (measured 2026-12-05, docs/images.md "Disk"): the host side holds .venv (3.2 GB) and
    # wheelhouse/ (0.6 GB) when they are new, and the tests' temporary files; Docker's side the images being built
    # (6.5 GB at the peak of the training build) and the test containers' layers.
    local host_need=2 docker_need=2 root host_dev docker_dev host_free docker_free
    [ -x .venv/bin/python ] || host_need=$((host_need + 4))
    [ ${#to_build[@]} -eq 0 ] || { host_need=$((host_need + 1)); docker_need=$((docker_need + 7)); }
    root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || true)
    host_free=$(df -Pk . | awk 'NR == 2 {print int($4 / 1048576)}')
    if [ -n "$root" ] && [ -d "$root" ]; then  # a local daemon: its disk can be measured
        docker_free=$(df -Pk "$root" | awk 'NR == 2 {print int($4 / 1048576)}')
        host_dev=$(stat -c %d .) docker_dev=$(stat -c %d "$root")
        if [ "$host_dev" = "$docker_dev" ]; then
            host_need=$((host_need + docker_need))
        elif [ "$docker_free" -lt "$docker_need" ]; then
            echo "tests/run.sh: $root (Docker's data) has $docker_free GB free; the images and test containers need about $docker_need GB" >&2
            exit 1
        fi
    fi
    if [ "$host_free" -lt "$host_need" ]; then
        echo "tests/run.sh: $(pwd) has $host_free GB free; the test run needs about $host_need GB there (docs/images.md, \"Disk\")" >&2
        exit 1
    fi
}
[ -n "${VIDEO3DCNN_SKIP_DISK_CHECK:-}" ] || check_disk

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r docker/requirements-dev.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .

# Compose v2 (the `docker compose` CLI plugin) beside Debian's v1.29: the compose tests run with both versions.
export VIDEO3DCNN_COMPOSE_V2_CONFIG
VIDEO3DCNN_COMPOSE_V2_CONFIG=$(docker/install-compose-v2.sh .cache/docker-config)

# Both images, through the air-gapped path that users without Docker Hub access follow (docs/images.md): a Debian base
# image made from packages, a wheelhouse, and builds with PIP_NO_INDEX=1 and no network. Images already built can be
# passed instead: VIDEO3DCNN_PROCESSING_IMAGE=tag VIDEO3DCNN_TRAINING_IMAGE=tag tests/run.sh
export VIDEO3DCNN_PROCESSING_IMAGE=${VIDEO3DCNN_PROCESSING_IMAGE:-video3dcnn-processing:test}
export VIDEO3DCNN_TRAINING_IMAGE=${VIDEO3DCNN_TRAINING_IMAGE:-video3dcnn-training:test}
if [ ${#to_build[@]} -gt 0 ]; then
    docker/build-base-image.sh
    PYTHON=.venv/bin/python docker/fill-wheelhouse.sh
    # BuildKit halves the build time. Debian's docker.io 20.10 CLI has it built in; a newer CLI needs buildx for it.
    builder=()
    if docker buildx version >/dev/null 2>&1; then
        builder=(DOCKER_BUILDKIT=1)
    elif /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.10\.'; then
        builder=(DOCKER=/usr/bin/docker DOCKER_BUILDKIT=1)
    fi
    only=()
    [ ${#to_build[@]} -eq 1 ] && only=(--only "${to_build[0]}")
    env "${builder[@]}" PROCESSING_IMAGE="$VIDEO3DCNN_PROCESSING_IMAGE" TRAINING_IMAGE="$VIDEO3DCNN_TRAINING_IMAGE" \
        docker/build-images.sh --offline --prune "${only[@]}"
fi

exec .venv/bin/python -m pytest --run-slow --run-container "$@"
