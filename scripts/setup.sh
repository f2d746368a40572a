#!/usr/bin/env bash
# Installs what the grader needs on a Debian machine and creates .venv/ with the `grader` command,
# and the web pages' front-end packages (web/node_modules, from npm). `--test` also installs what
# only the tests need (Chromium for the browser tests). Safe to run again: it only installs what
# is missing, and reinstalls packages only when pyproject.toml or web/package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")/.."
FOR_TESTS=0
for arg in "$@"; do
    case "$arg" in
        --test) FOR_TESTS=1 ;;
        *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
    esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- Debian packages -------------------------------------------------------------------------
# bubblewrap: the sandbox; util-linux: prlimit and setpriv; libseccomp2: the syscall filter;
# redis-server: the queue; postgresql: the production database (SQLite is the default);
# docker.io: the container sandbox; nodejs and npm: the web pages' front-end packages;
# chromium (tests only): the browser the end-to-end tests drive.
DEBIAN_PACKAGES=(bubblewrap util-linux libseccomp2 ca-certificates redis-server postgresql docker.io)
PYTHON="${PYTHON:-python3}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    DEBIAN_PACKAGES+=(nodejs npm)
fi
if ((FOR_TESTS)); then
    DEBIAN_PACKAGES+=(chromium fonts-dejavu-core)
fi
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    DEBIAN_PACKAGES+=(python3-venv)
fi
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "error: missing Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python ----------------------------------------------------------------------------------
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python 3.11 or newer is needed; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
    say "creating the virtual environment in .venv/"
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
    say "installing Python packages"
    # torch is pinned: on a machine without a GPU `torch==2.13.0` resolves to the local CPU build,
    # while an unpinned `torch` would download several GB of CUDA packages. It is installed first,
    # with pip (not uv), so that the project's own requirement finds it already satisfied.
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
    # The rest with uv when it installs (it resolves and downloads in parallel: ~20 s here against
    # ~45 s for pip), else with pip. Both compile the bytecode: a sandbox cannot write it, and a
    # runner importing numpy from source each time would start slower.
    if .venv/bin/pip install --quiet --disable-pip-version-check uv; then
        .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -e '.[dev]'
    else
        .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi
# --- front-end packages (served from web/node_modules; nothing is vendored in the repository) --
web_stamp="web/node_modules/.installed-$(sha256sum web/package-lock.json | cut -c1-16)"
if [[ ! -f "$web_stamp" ]]; then
    say "installing the web pages' front-end packages (npm)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    rm -f web/node_modules/.installed-*
    touch "$web_stamp"
fi
say "ready: $(.venv/bin/grader --help >/dev/null && echo ".venv/bin/grader")"
