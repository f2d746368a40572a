#!/usr/bin/env bash
# Sets everything up, then starts the grader on this machine: the web app, its grading workers
# and a private Redis, with state in ./var/ (`grader serve`; options such as --port or --workers
# are passed on). It prints the URL and, on the first run, the demo logins. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/grader serve "$@"
