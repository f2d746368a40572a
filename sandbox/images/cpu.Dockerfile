# The production runtime image for CPU exercises: Python, torch and the runner, nothing else.
# Build from the repository root:
#   docker build -f sandbox/images/cpu.Dockerfile -t grader-runtime:cpu .
# and point workers at it: GRADER_DOCKER_IMAGE=grader-runtime:cpu grader worker --sandbox docker
# (Where no registry is reachable, `grader sandbox build` makes a local image instead.)
FROM python:3.11-slim-bookworm

# torch pinned to the version the grader is tested with; the CPU wheel index keeps the image
# free of CUDA libraries. Triton is the version torch 2.13's CUDA wheel requires; on CPU it
# interprets the GPU-kernel exercises' kernels (the sandbox sets TRITON_INTERPRET=1).
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install --no-cache-dir "numpy>=1.26" "regex>=2023.0" "triton==3.7.1"

# Only the runner's own files: never the harness, the tests, or solutions/.
COPY grader/__init__.py grader/codec.py /opt/grader/runtime/grader/
COPY grader/runner/ /opt/grader/runtime/grader/runner/
RUN python -m compileall -q /opt/grader/runtime && mkdir -p /work && chmod 1777 /work

LABEL grader.runtime="image" grader.python="/usr/local/bin/python" \
      grader.site="/usr/local/lib/python3.11/site-packages"
USER 65534:65534
WORKDIR /work
