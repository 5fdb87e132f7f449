#!/usr/bin/env bash
# Fill wheelhouse/ with every wheel both images need, for offline builds (PIP_NO_INDEX=1).
#
# Runs on a host with PyPI access. It builds the two sdist-only packages (sagemaker-training, which has a C extension,
# and inotify_simple) with this host's Python 3.11, then downloads manylinux wheels for CPython 3.11 / x86_64 of
# everything pinned in docker/requirements-*.txt. Files already present are reused, so a second run is quick.
#
# Usage: docker/fill-wheelhouse.sh [WHEELHOUSE]     (default: wheelhouse/ at the repository root)
# Environment:
#   PYTHON   a CPython 3.11 interpreter with pip (default: python3); the built sagemaker-training wheel is cp311
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELHOUSE=${1:-wheelhouse}
PYTHON=${PYTHON:-python3}
REQUIREMENTS=(docker/requirements-processing.txt docker/requirements-training.txt docker/requirements-build.txt)
SDIST_ONLY=(sagemaker-training inotify_simple)

die() { echo "fill-wheelhouse: $*" >&2; exit 1; }

# The == pin of package $1 in the requirements files.
pinned() {
    grep -hiE "^$1==" "${REQUIREMENTS[@]}" | head -n 1 | tr -d '[:space:]'
}

# pip (23.x) does not expand manylinux_2_X tags from one --platform: list every glibc level up to bookworm's 2.36.
platform_args() {
    local i
    for i in $(seq 36 -1 5); do printf -- '--platform manylinux_2_%s_x86_64 ' "$i"; done
    printf -- '--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 '
    printf -- '--platform linux_x86_64'
}

version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "cannot run $PYTHON"
[ "$version" = 3.11 ] || die "$PYTHON is Python $version; the images run CPython 3.11, so the sagemaker-training wheel must be built by 3.11 (set PYTHON=...)"

# The host's find-links (e.g. a machine-wide wheel cache) must not leak other builds in; pip.conf (CA, index) is kept.
unset PIP_FIND_LINKS PIP_NO_INDEX
mkdir -p "$WHEELHOUSE"
start=$(date +%s)

sdists=()
for name in "${SDIST_ONLY[@]}"; do
    pin=$(pinned "$name")
    [ -n "$pin" ] || die "no $name==VERSION pin in ${REQUIREMENTS[*]}"
    sdists+=("$pin")
done
echo "fill-wheelhouse: building ${sdists[*]}"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WHEELHOUSE" --find-links "$WHEELHOUSE" "${sdists[@]}"

requirement_args=()
for file in "${REQUIREMENTS[@]}"; do requirement_args+=(--requirement "$file"); done
echo "fill-wheelhouse: downloading wheels for cp311 manylinux x86_64"
# shellcheck disable=SC2046  # platform_args is a list of words on purpose
"$PYTHON" -m pip download --quiet --dest "$WHEELHOUSE" --find-links "$WHEELHOUSE" --only-binary=:all: \
    $(platform_args) --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    "${requirement_args[@]}"

echo "fill-wheelhouse: $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1) in $WHEELHOUSE ($(( $(date +%s) - start )) s)"
