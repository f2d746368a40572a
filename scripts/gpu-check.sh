#!/usr/bin/env bash
# The GPU host's check, in one run of under 8 minutes: an environment report (driver, torch,
# triton, the GPU), the GPU tests (`pytest -m gpu`), every GPU exercise's reference and wrong
# variants graded on the device, and the kernel exercises timed. It writes a report
# (var/gpu-check/report.md and .json) and exits 0 when everything held.
#
#   scripts/gpu-check.sh                     on a GPU host (cuda:0)
#   scripts/gpu-check.sh --dry-run           anywhere: the same steps on the CPU (CI runs this)
#   scripts/gpu-check.sh --wheels DIR        a host that can fetch nothing: the grader's Python
#                                            packages come from DIR (made by scripts/gpu-wheels.sh);
#                                            torch and triton are the host's own
# Other arguments go to `python -m grader.devicecheck` (--device, --report, --exercises, --budget).
set -euo pipefail
cd "$(dirname "$0")/.."

wheels=""
args=()
dry=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheels) wheels="${2:?--wheels needs a folder}"; shift 2 ;;
        --dry-run) dry=1; args+=("$1"); shift ;;
        *) args+=("$1"); shift ;;
    esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
needed=(pydantic pytest numpy pyseccomp)
importable() { "$1" -c "import ${needed[*]/%/,} sys" 2>/dev/null; }

if [[ -n "$wheels" ]]; then
    # torch and triton stay the host's (its CUDA build); the rest comes from the wheels, offline
    python="${PYTHON:-python3}"
    if [[ ! -x .venv-gpu/bin/python ]]; then
        say "creating .venv-gpu (with the host's site-packages) from $wheels"
        "$python" -m venv --system-site-packages .venv-gpu
    fi
    .venv-gpu/bin/pip install --quiet --no-index --find-links "$wheels" -r scripts/gpu-requirements.txt
    python=.venv-gpu/bin/python
elif [[ -x .venv/bin/python ]] && importable .venv/bin/python; then
    python=.venv/bin/python
elif importable "${PYTHON:-python3}"; then
    python="${PYTHON:-python3}"
elif [[ $dry -eq 1 ]]; then
    say "setting up the project first"
    scripts/setup.sh >&2
    python=.venv/bin/python
else
    echo "error: the grader's Python packages are missing: pass --wheels DIR (see scripts/gpu-wheels.sh)" >&2
    exit 2
fi
say "checking with $python"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m grader.devicecheck "${args[@]}"
