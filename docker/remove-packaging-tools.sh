#!/bin/sh
# Remove the Python packaging tools from an image: pip, setuptools, wheel, and the wheels ensurepip installs them from.
# No job installs anything at run time (the toolkit pip-installs only a requirements.txt or setup.py in /opt/ml/code,
# and the training image ships train.py alone there), and each of them is code a scanner reports and an attacker could
# use. Both kinds of base image are handled: python:3.11-slim-bookworm (a python.org build under /usr/local, with pip,
# setuptools, wheel and ensurepip's bundled wheels) and the offline Debian base (python3-venv, whose python3-pip-whl
# and python3-setuptools-whl hold the wheels in /usr/share/python-wheels).
#
#   remove-packaging-tools.sh VENV   builder stage, once VENV is complete and checked: uninstall them from VENV
#   remove-packaging-tools.sh        shipped stage, before anything else: remove the base image's own copies
set -eu

if [ $# -gt 0 ]; then
    "$1/bin/python" -m pip uninstall --yes --quiet setuptools wheel pip
    exit 0
fi

# Debian's packages, through dpkg so that its database (what image scanners read) stays true. python3-venv is needed
# only to create a virtual environment, which the builder stage has done.
installed=$(dpkg-query -W -f '${db:Status-Status} ${Package}\n' \
    python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl 2>/dev/null | awk '$1 == "installed" {print $2}')
if [ -n "$installed" ]; then
    # shellcheck disable=SC2086 # one word per package
    dpkg --purge $installed || echo "remove-packaging-tools: other packages need $installed: kept" >&2
fi

# A python.org build (the python:*-slim images).
for lib in /usr/local/lib/python3*; do
    [ -d "$lib" ] || continue
    rm -rf "$lib/ensurepip/_bundled"
    for name in pip setuptools wheel _distutils_hack pkg_resources; do
        rm -rf "$lib/site-packages/$name" "$lib/site-packages/$name"-*.dist-info
    done
    rm -f "$lib/site-packages/distutils-precedence.pth"
done
rm -f /usr/local/bin/pip /usr/local/bin/pip3 /usr/local/bin/pip3.* /usr/local/bin/wheel
