#!/usr/bin/env bash
# Install Compose v2 (`docker compose`) as a Docker CLI plugin on a Debian bookworm machine, without root and without
# touching the system's apt configuration.
#
# Debian bookworm packages only Compose v1.29 (`docker-compose`); Debian trixie packages Compose v2 (docker-compose
# 2.26), a static Go binary that needs nothing but libc. This script fetches that .deb with apt through a temporary,
# trixie-only source list that points at this machine's own Debian mirror, extracts
# usr/libexec/docker/cli-plugins/docker-compose into DIR/cli-plugins/, and prints DIR. Use it with
#
#   export DOCKER_CONFIG=$(docker/install-compose-v2.sh)      # then: docker compose version
#
# (DOCKER_CONFIG is also where `docker login` keeps credentials: copy config.json into DIR if you need them.)
#
# Usage: docker/install-compose-v2.sh [DIR]        (default: .cache/docker-config under the repository root)
# Environment:
#   DEBIAN_MIRROR  the mirror to fetch from (default: the first Debian mirror in this machine's apt sources)
#   COMPOSE_DEB_SUITE  the suite that packages Compose v2 (default: trixie)
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=$(realpath -m "${1:-.cache/docker-config}")
SUITE=${COMPOSE_DEB_SUITE:-trixie}
PLUGIN="$DIR/cli-plugins/docker-compose"

die() { echo "install-compose-v2: $*" >&2; exit 1; }

# The machine's own Debian mirror: deb822 (.sources) "URIs:" lines first, then one-line "deb URL suite" entries.
machine_mirror() {
    local uri
    uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -E '/debian/?$' | head -n 1) || true
    if [ -z "$uri" ]; then
        uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' | grep -E '/debian/?$' \
            | head -n 1) || true
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ -x "$PLUGIN" ] && DOCKER_CONFIG="$DIR" docker compose version >/dev/null 2>&1; then
    echo "$DIR"
    exit 0
fi
command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian/Ubuntu machines"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring not found: install the debian-archive-keyring package"

mirror=${DEBIAN_MIRROR:-$(machine_mirror)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' "$mirror" "$SUITE" "$keyring" \
    >"$work/compose.sources"
# Only our source list (apt reads a *.sources file as deb822), private lists and cache, no locks on the system's.
apt_options=(
    -o "Dir::Etc::SourceList=$work/compose.sources" -o "Dir::Etc::SourceParts=$work/none"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
    -o "APT::Sandbox::User=$(id -un)" -o "Debug::NoLocking=1"
)
echo "install-compose-v2: fetching docker-compose from $mirror $SUITE" >&2
apt-get "${apt_options[@]}" -qq update >&2 || die "apt-get update of $mirror $SUITE failed"
(cd "$work/deb" && apt-get "${apt_options[@]}" -qq download docker-compose >&2) \
    || die "could not download docker-compose from $mirror $SUITE"
deb=$(find "$work/deb" -name 'docker-compose_*.deb' | head -n 1)
[ -n "$deb" ] || die "apt-get download left no docker-compose .deb"
case "$(basename "$deb")" in docker-compose_1.*) die "$SUITE packages Compose v1 ($(basename "$deb")), not v2" ;; esac
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$DIR/cli-plugins"
install -m 0755 "$work/root/usr/libexec/docker/cli-plugins/docker-compose" "$PLUGIN.tmp"
mv "$PLUGIN.tmp" "$PLUGIN"
DOCKER_CONFIG="$DIR" docker compose version >&2 || die "the extracted plugin does not run: $PLUGIN"
echo "$DIR"
