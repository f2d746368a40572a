# The production runtime image for GPU exercises: CUDA runtime, Python, torch and the runner.
# Build from the repository root:
#   docker build -f sandbox/images/gpu.Dockerfile -t grader-runtime:gpu .
# A GPU worker gets exactly one device per container (`grader worker --gpu INDEX` passes
# `--gpus device=INDEX`); the host needs the NVIDIA Container Toolkit.
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu128 torch==2.13.0 \
    && /opt/venv/bin/pip install --no-cache-dir "numpy>=1.26" "regex>=2023.0" "triton==3.7.1"

COPY grader/__init__.py grader/codec.py /opt/grader/runtime/grader/
COPY grader/runner/ /opt/grader/runtime/grader/runner/
RUN /opt/venv/bin/python -m compileall -q /opt/grader/runtime && mkdir -p /work && chmod 1777 /work

LABEL grader.runtime="image" grader.python="/opt/venv/bin/python" \
      grader.site="/opt/venv/lib/python3.12/site-packages"
USER 65534:65534
WORKDIR /work
