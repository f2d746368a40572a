#!/usr/bin/env bash
# Starts the Docker daemon if none answers (hosts without systemd, such as CI containers) and
# builds the grader's runtime image. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! docker info >/dev/null 2>&1; then
    # A daemon killed without cleaning up leaves its pid file, and dockerd refuses to start.
    pidfile=/var/run/docker.pid
    if [[ -f $pidfile ]] && ! grep -qs dockerd "/proc/$(cat "$pidfile")/comm"; then
        rm -f "$pidfile"
    fi
    say "starting dockerd (log: var/dockerd.log)"
    mkdir -p var
    nohup dockerd >var/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        echo "error: dockerd did not start; see var/dockerd.log" >&2
        tail -n 20 var/dockerd.log >&2 || true
        exit 1
    fi
fi
say "building the sandbox image"
.venv/bin/grader sandbox build
