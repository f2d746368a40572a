#!/usr/bin/env bash
# Sets everything up, then runs every check the project has: lint, types, the test suite
# (unit, integration, red team, and the validation of every exercise). The tests start their own
# Redis and PostgreSQL; Docker's daemon is started here if it is not running. Safe to run again.
#
#   scripts/test.sh              everything (what CI runs)
#   scripts/test.sh --quick      lint, types and the unit tests: the lane for development (~1 min)
#   scripts/test.sh [--quick] ARGS...   extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
if [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
fi
scripts/setup.sh --test
if [[ $quick == 0 ]]; then
    scripts/docker.sh
fi
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if [[ $quick == 1 ]]; then
    echo "==> mypy"
    .venv/bin/mypy
else
    # beside the tests (one core for ~20 s, while they start): its report follows theirs
    echo "==> mypy (beside the tests; its report comes after theirs)"
    mypy_log=$(mktemp /tmp/grader-mypy.XXXXXX)
    .venv/bin/mypy >"$mypy_log" 2>&1 &
    mypy_pid=$!
fi
echo "==> pytest"
# A validation report that holds is kept for this run: an exercise version (same files, same
# grader code) validated once is not validated again by a later test.
GRADER_VALIDATION_CACHE="${GRADER_VALIDATION_CACHE:-$(mktemp -d /tmp/grader-validation.XXXXXX)}"
export GRADER_VALIDATION_CACHE
if [[ $quick == 1 ]]; then
    exec .venv/bin/python -m pytest tests/unit "$@"
fi
# Spread over the cores (GRADER_TEST_WORKERS to choose how many): a grading mostly waits on its
# sandbox, and the verdicts must be the same on a busy machine anyway. Idle workers steal queued
# tests, so one long test (an exercise's validation) does not hold the others back.
tests=0
.venv/bin/python -m pytest -n "${GRADER_TEST_WORKERS:-auto}" --dist worksteal "$@" || tests=$?
types=0
wait "$mypy_pid" || types=$?
echo "==> mypy"
cat "$mypy_log"
rm -f "$mypy_log"
if ((types)); then
    echo "error: mypy found problems (above)" >&2
fi
if ((tests)); then
    exit "$tests"
fi
exit "$types"
