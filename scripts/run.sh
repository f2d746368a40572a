#!/usr/bin/env bash
# Sets everything up, shows the curriculum, and grades a sample submission in the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/grader exercise list
.venv/bin/grader grade causal-masking examples/submissions/attention.py "$@"
