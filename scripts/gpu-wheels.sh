#!/usr/bin/env bash
# Download the wheels `scripts/gpu-check.sh --wheels DIR` needs, for a GPU host that can fetch
# nothing (its Python version and platform given here), into DIR (default var/gpu-wheels).
#   scripts/gpu-wheels.sh [DIR] [PYTHON_VERSION, default 3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-var/gpu-wheels}"
version="${2:-3.12}"
mkdir -p "$dir"
pip="${PIP:-.venv/bin/pip}"
"$pip" download --quiet --disable-pip-version-check --dest "$dir" --only-binary=:all: \
    --python-version "$version" --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform any -r scripts/gpu-requirements.txt
du -sh "$dir"
