#!/usr/bin/env bash
# Build the processing and training images, label them, and print their sizes and build times.
#
# Usage: docker/build-images.sh [--offline] [--prune] [--only processing|training] [-- EXTRA_DOCKER_BUILD_ARGS...]
#        docker/build-images.sh --labels
#   --offline   air-gapped build: BASE_IMAGE defaults to local/bookworm-python:3.11, PIP_NO_INDEX=1 and
#               `--network none`; needs docker/build-base-image.sh and docker/fill-wheelhouse.sh to have run.
#   --prune     after each image, remove what its build leaves behind: the classic builder's dangling builder-stage
#               images, BuildKit's dangling build cache (together about 4.4 GB). Done before the next image is built,
#               so a small disk holds only one image's builder at a time; the next build starts from scratch.
#   --only      build one of the two images.
#   --labels    build nothing; print the OCI label values as shell assignments for docker compose, which cannot run
#               git itself: eval "$(docker/build-images.sh --labels)" && docker compose build
# Environment:
#   PROCESSING_IMAGE    tag of the processing image (default video3dcnn-processing:latest)
#   TRAINING_IMAGE      tag of the training image (default video3dcnn-training:latest)
#   BASE_IMAGE          base image (default python:3.11-slim-bookworm; with --offline local/bookworm-python:3.11)
#   PLATFORM            target platform (default linux/amd64, what SageMaker runs; empty: the daemon's own)
#   JAX_PACKAGE         jax[cpu] (default) or 'jax[cuda12]' for a GPU training image
#   DOCKER              the docker CLI to use (default: docker on PATH)
#   DOCKER_BUILDKIT     1 needs buildx, or Debian's docker.io 20.10 CLI (/usr/bin/docker), which has BuildKit built in
#   VIDEO3DCNN_VERSION, VIDEO3DCNN_REVISION, VIDEO3DCNN_SOURCE
#                       the OCI labels version, revision and source (default: the package version, the git commit
#                       and the git remote of this tree; "unknown" without git)
set -euo pipefail
cd "$(dirname "$0")/.."

PROCESSING_IMAGE=${PROCESSING_IMAGE:-video3dcnn-processing:latest}
TRAINING_IMAGE=${TRAINING_IMAGE:-video3dcnn-training:latest}
PLATFORM=${PLATFORM-linux/amd64}
DOCKER=${DOCKER:-docker}
OFFLINE_BASE=local/bookworm-python:3.11

die() { echo "build-images: $*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

offline=0 prune=0 only="" extra=() labels=0
while [ $# -gt 0 ]; do
    case "$1" in
        --offline) offline=1 ;;
        --labels) labels=1 ;;
        --prune) prune=1 ;;
        --only) only=${2:-}; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
case "$only" in ""|processing|training) ;; *) die "--only takes processing or training, not '$only'" ;; esac

VIDEO3DCNN_VERSION=${VIDEO3DCNN_VERSION:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/video3dcnn/__init__.py)}
VIDEO3DCNN_REVISION=${VIDEO3DCNN_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
VIDEO3DCNN_SOURCE=${VIDEO3DCNN_SOURCE:-$(git config --get remote.origin.url 2>/dev/null || echo unknown)}
if [ "$labels" = 1 ]; then
    for name in VIDEO3DCNN_VERSION VIDEO3DCNN_REVISION VIDEO3DCNN_SOURCE; do
        printf 'export %s=%q\n' "$name" "${!name}"
    done
    exit 0
fi
common=(--build-arg "VERSION=$VIDEO3DCNN_VERSION" --build-arg "REVISION=$VIDEO3DCNN_REVISION")
common+=(--build-arg "SOURCE=$VIDEO3DCNN_SOURCE")
[ -n "$PLATFORM" ] && common+=(--platform "$PLATFORM")
[ -n "${JAX_PACKAGE:-}" ] && common+=(--build-arg "JAX_PACKAGE=$JAX_PACKAGE")

if [ "$offline" = 1 ]; then
    BASE_IMAGE=${BASE_IMAGE:-$OFFLINE_BASE}
    "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
        || die "no local image $BASE_IMAGE: run docker/build-base-image.sh first"
    find wheelhouse -name 'sagemaker_training-*.whl' | grep -q . \
        || die "wheelhouse/ has no sagemaker-training wheel: run docker/fill-wheelhouse.sh first"
    common+=(--build-arg PIP_NO_INDEX=1 --network none)
fi
[ -n "${BASE_IMAGE:-}" ] && common+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")

summary=()
# Build Dockerfile.$1 as tag $2 and record its size and wall time.
build() {
    local start seconds size
    start=$(date +%s)
    echo "build-images: building $2 from Dockerfile.$1"
    "$DOCKER" build "${common[@]}" "${extra[@]}" --file "Dockerfile.$1" --tag "$2" . || die "building $2 failed"
    seconds=$(( $(date +%s) - start ))
    size=$("$DOCKER" image inspect --format '{{.Size}}' "$2" | awk '{printf "%.0f MB", $1 / 1e6}')
    summary+=("$(printf '%-40s %8s %6s s' "$2" "$size" "$seconds")")
    [ "$prune" = 1 ] && prune_leftovers
    return 0
}

# The classic builder keeps each builder stage as a dangling image (labelled); BuildKit keeps its stages as build
# cache. `builder prune` without --all removes only cache that no image uses.
prune_leftovers() {
    "$DOCKER" image prune --force --filter label=video3dcnn.stage=builder >/dev/null
    "$DOCKER" builder prune --force >/dev/null
}

[ "$only" != training ] && build processing "$PROCESSING_IMAGE"
[ "$only" != processing ] && build training "$TRAINING_IMAGE"
printf 'build-images: %s\n' "${summary[@]}"
