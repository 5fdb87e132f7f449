#!/usr/bin/env bash
# Build a Debian bookworm + Python 3.11 base image from Debian packages and load it with `docker import`.
#
# For hosts that cannot pull from Docker Hub: the result replaces python:3.11-slim-bookworm as BASE_IMAGE
# (see docs/images.md, "Air-gapped build"). Needs root (or mmdebstrap's unshare mode), mmdebstrap and a reachable
# Debian mirror; no container registry.
#
# Usage: docker/build-base-image.sh [TAG]          (default TAG: local/bookworm-python:3.11)
# Environment:
#   MIRROR           Debian mirror (default: the first URI of this host's Debian apt sources, else deb.debian.org)
#   SECURITY_MIRROR  Debian security mirror (default: likewise, else deb.debian.org/debian-security)
#   FORCE=1          rebuild even if TAG already exists
set -euo pipefail

TAG=${1:-local/bookworm-python:3.11}
SOURCES=/etc/apt/sources.list.d/debian.sources

die() { echo "build-base-image: $*" >&2; exit 1; }

# Print the Nth URI of this host's Debian deb822 sources, if it is a Debian host.
apt_source_uri() {
    [ -r "$SOURCES" ] || return 0
    awk -v want="$1" '/^URIs:/ { n++; if (n == want) { print $2; exit } }' "$SOURCES"
}

command -v mmdebstrap >/dev/null || die "mmdebstrap not found: apt-get install --no-install-recommends mmdebstrap"
command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running, and may this user use it?)"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "build-base-image: $TAG exists (FORCE=1 rebuilds it)"
    exit 0
fi

MIRROR=${MIRROR:-$(apt_source_uri 1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(apt_source_uri 2)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

start=$(date +%s)
echo "build-base-image: mmdebstrap bookworm from $MIRROR (security: $SECURITY_MIRROR)"
# merged-usr hook: without it mmdebstrap installs usrmerge, which pulls in perl (+50 MB).
# python3-venv brings python3.11 and the pip wheel that `python3 -m venv` seeds; ca-certificates for online builds.
mmdebstrap --quiet --variant=minbase --include=python3-venv,ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='APT::Install-Recommends "false"' --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin; : > "$1"/etc/resolv.conf' \
    bookworm "$workdir/rootfs.tar" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECURITY_MIRROR bookworm-security main"

docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "Debian bookworm minbase + python3-venv (docker/build-base-image.sh)" \
    "$workdir/rootfs.tar" "$TAG" >/dev/null

docker run --rm --network none "$TAG" python3 -c 'import sys, venv, ensurepip; print("python", sys.version.split()[0])'
echo "build-base-image: $TAG built in $(( $(date +%s) - start )) s, $(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
