#!/usr/bin/env bash
# Build the grader's application image without a registry: `docker import` of a root filesystem
# that holds mount points only. The containers bind this host's runtime read-only at run time
# (/usr, the Python interpreter, the project and its virtual environment), so the image is a few
# kilobytes, builds in a second and stays identical to what the host runs. Production hosts that
# can build from a base image use deploy/grader.Dockerfile instead.
#
#   deploy/build-local.sh [IMAGE]        (default grader-app:local; prints the image id)
#
# A container of this image runs with (see docs/operations.md, "Deploying on several hosts"):
#   -v /usr:/usr:ro -v /etc/ld.so.cache:/etc/ld.so.cache:ro -v /etc/ssl:/etc/ssl:ro
#   -v /etc/alternatives:/etc/alternatives:ro -v <python prefix>:<python prefix>:ro
#   -v <project>:<project>:ro  --tmpfs /tmp:rw,exec,mode=1777
# and the same image serves PostgreSQL (as uid 999, "postgres") and Redis (uid 998, "redis").
set -euo pipefail

image="${1:-grader-app:local}"
project="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
venv_python="$project/.venv/bin/python"
if [[ ! -x "$venv_python" ]]; then
    echo "build-local.sh: $venv_python is missing: create the virtual environment first (scripts/setup.sh)" >&2
    exit 1
fi
if ! command -v docker >/dev/null; then
    echo "build-local.sh: the docker command is missing (Debian: apt-get install docker.io)" >&2
    exit 1
fi
python="$(readlink -f "$venv_python")"
# the interpreter's installation prefix: <prefix>/bin/python3.X
prefix="$(dirname "$(dirname "$python")")"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{etc,dev,proc,sys,run,tmp,usr,opt,root,home}
mkdir -p "$root/var/lib/grader" "$root/var/lib/postgresql" "$root/var/lib/redis"
mkdir -p "$root$prefix" "$root$project"
chmod 1777 "$root/tmp" "$root/var/lib/grader"
for link in bin lib lib64 sbin; do
    ln -s "usr/$link" "$root/$link"
done
cat >"$root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/usr/sbin/nologin
grader:x:1000:1000:grader:/var/lib/grader:/usr/sbin/nologin
postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/usr/sbin/nologin
redis:x:998:998:Redis:/var/lib/redis:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$root/etc/group" <<GROUP
root:x:0:
grader:x:1000:
postgres:x:999:
redis:x:998:
nogroup:x:65534:
GROUP
printf 'hosts: files dns\npasswd: files\ngroup: files\n' >"$root/etc/nsswitch.conf"

tar --numeric-owner --owner=0 --group=0 -C "$root" -c . | docker import \
    --change "LABEL grader.runtime=host-bound" \
    --change "LABEL grader.python=$python" \
    --change "LABEL grader.project=$project" \
    --change "ENV PATH=$project/.venv/bin:/usr/local/bin:/usr/bin:/bin" \
    --change "ENV GRADER_DATA_DIR=/var/lib/grader" \
    --change "ENV HOME=/var/lib/grader" \
    --change "WORKDIR $project" \
    - "$image"
