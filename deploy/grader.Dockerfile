# The grader's production image: one image for the web role and the worker role, built once and
# copied to every host (`docker save | ssh host docker load`), so that every host grades with the
# same Python, torch and grader code (the queue page flags workers whose image id differs).
#
#   docker build -f deploy/grader.Dockerfile -t grader-app:1 .                       (GPU hosts)
#   docker build -f deploy/grader.Dockerfile -t grader-app:1-cpu \
#       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .           (CPU only)
#
# Where no registry or base image can be reached, deploy/build-local.sh builds an equivalent
# image by `docker import` that binds the host's runtime read-only instead.

# --- the web pages' front-end packages (web/node_modules) ------------------------------------
FROM node:20-slim AS assets
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# --- the application -------------------------------------------------------------------------
FROM python:3.11-slim
# bubblewrap: the sandbox; util-linux: prlimit and setpriv; libseccomp2: the syscall filter;
# postgresql-client: pg_isready and psql for the operator; tini reaps the sandboxes' orphans
RUN apt-get update \
    && apt-get install --yes --no-install-recommends \
        bubblewrap util-linux libseccomp2 ca-certificates postgresql-client tini \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/grader/.venv \
    PATH=/opt/grader/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GRADER_DATA_DIR=/var/lib/grader \
    HOME=/var/lib/grader
RUN python -m venv "$VIRTUAL_ENV"

# torch is pinned to the one version pyproject.toml pins (torch==2.13.0): a verdict is only
# reproducible, and performance thresholds only hold, with the build the project is tested with,
# and every host must run the same one. It is installed first, in a layer of its own, so that a
# change to the project does not download it again. Left to PyPI the Linux wheel is the CUDA
# build (GPU hosts); TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu takes the CPU build,
# several GB smaller, for hosts without a GPU.
ARG TORCH_INDEX_URL=""
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"

WORKDIR /opt/grader
COPY pyproject.toml README.md ./
COPY grader ./grader
COPY sandbox ./sandbox
COPY web ./web
COPY exercises ./exercises
COPY solutions ./solutions
COPY --from=assets /src/web/node_modules ./web/node_modules
# installed in place (editable): the grader finds exercises/ and solutions/ beside its code.
# Bytecode is compiled here: a sandbox cannot write it, and a runner would compile on every start
RUN pip install --no-cache-dir -e . \
    && python -m compileall -q grader sandbox web \
    && mkdir -p /var/lib/grader /run/grader-uids

VOLUME /var/lib/grader
EXPOSE 8000
ENTRYPOINT ["/usr/bin/tini", "--"]
# the web role; the worker role runs `grader worker` (deploy/compose.worker.yml)
CMD ["python", "-m", "uvicorn", "--factory", "web.app:create_app", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--forwarded-allow-ips", "*", "--no-access-log"]
