#!/usr/bin/env bash
# Sets everything up, then runs every check the project has: lint, types, the test suite
# (unit, integration, red team, and the validation of every exercise). The tests start their own
# Redis and PostgreSQL; Docker's daemon is started here if it is not running. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/docker.sh
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/python -m pytest "$@"
