"""What a grading host is made of, so that verdicts say where they were given and hosts that
differ are seen before they give different verdicts.

A fingerprint names the host and the pieces a verdict can depend on: Python, the grader, torch
and its CUDA, Triton, the GPU and its driver, the sandbox, the sandbox image's digest (Docker)
and a digest of the installed Python distributions (the runtime a bubblewrap sandbox binds).
Each worker publishes its own with its heartbeat (a Redis key that expires when the worker
stops renewing it); the queue page compares the workers of each queue, and every verdict's
provenance carries the grading host's fingerprint.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import platform
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError
from redis import Redis

from grader import __version__

KEY_PREFIX = "grader:fingerprint:"
# what must be the same on every worker of a queue for their verdicts to agree
COMPARED = (
    "python",
    "grader_version",
    "torch",
    "cuda",
    "triton",
    "driver",
    "gpu",
    "image_digest",
    "runtime_digest",
)


class Fingerprint(BaseModel):
    host: str
    python: str
    grader_version: str
    torch: str | None = None
    cuda: str | None = None  # the CUDA torch was built with
    triton: str | None = None
    driver: str | None = None  # the NVIDIA driver, on a GPU worker
    gpu: str | None = None  # the device's model, on a GPU worker
    sandbox: str = ""
    image: str | None = None
    image_digest: str | None = None  # the Docker sandbox image's id (sha256:...)
    runtime_digest: str = ""  # the installed Python distributions and their versions


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def runtime_digest() -> str:
    """A digest of every installed distribution's name and version."""
    names = sorted(
        f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in importlib.metadata.distributions()
    )
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


@functools.cache
def _torch_cuda() -> str | None:
    """The CUDA torch was built with (`torch.version.cuda`), read from its `version.py` unless
    torch is imported already: importing torch for one string costs a second and a half."""
    torch = sys.modules.get("torch")
    if torch is not None:
        cuda = torch.version.cuda
        return cuda if isinstance(cuda, str) else None
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        tree = ast.parse((Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        pair: tuple[ast.expr, ast.expr | None] | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            pair = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            pair = node.target, node.value
        if pair is None or not isinstance(pair[0], ast.Name) or pair[0].id != "cuda" or pair[1] is None:
            continue
        try:
            cuda = ast.literal_eval(pair[1])
        except ValueError:
            return None
        return cuda if isinstance(cuda, str) else None
    return None


@functools.cache
def gpu_of(device: str) -> tuple[str | None, str | None]:
    """(model, driver) of `device` ("cuda:N") from nvidia-smi, without touching CUDA in this
    process; (None, None) for the CPU or where nvidia-smi cannot tell."""
    if not device.startswith("cuda") or shutil.which("nvidia-smi") is None:
        return None, None
    index = device.partition(":")[2] or "0"
    try:
        done = subprocess.run(
            ["nvidia-smi", "-i", index, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    if done.returncode != 0 or "," not in done.stdout:
        return None, None
    name, _, driver = done.stdout.strip().splitlines()[0].rpartition(",")
    return name.strip() or None, driver.strip() or None


def take(sandbox: str, image: str | None, image_digest: str | None, device: str = "cpu") -> Fingerprint:
    """This host's fingerprint for a worker grading on `device` with the given sandbox."""
    gpu, driver = gpu_of(device)
    return Fingerprint(
        host=socket.gethostname(),
        python=platform.python_version(),
        grader_version=__version__,
        torch=_version("torch"),
        cuda=_torch_cuda(),
        triton=_version("triton"),
        driver=driver,
        gpu=gpu,
        sandbox=sandbox,
        image=image,
        image_digest=image_digest,
        runtime_digest=runtime_digest(),
    )


@functools.lru_cache(maxsize=16)
def of_host(sandbox: str, image: str | None, image_digest: str | None, device: str = "cpu") -> Fingerprint:
    """`take`, once per process and arguments (for every verdict's provenance)."""
    return take(sandbox, image, image_digest, device)


def publish(redis: Redis, worker: str, fingerprint: Fingerprint, ttl_s: int) -> None:
    """The worker's heartbeat: its fingerprint, gone `ttl_s` after the last renewal."""
    redis.set(KEY_PREFIX + worker, fingerprint.model_dump_json(), ex=max(1, ttl_s))


def published(redis: Redis, workers: Iterable[str]) -> dict[str, Fingerprint]:
    """The fingerprints the named workers published (those alive and renewing)."""
    names = list(workers)
    if not names:
        return {}
    found: dict[str, Fingerprint] = {}
    for name, raw in zip(names, redis.mget([KEY_PREFIX + n for n in names]), strict=True):
        if raw is None:
            continue
        try:
            found[name] = Fingerprint.model_validate_json(raw)
        except ValidationError:
            continue
    return found


def differences(
    fingerprints: Mapping[str, Fingerprint], queues: Mapping[str, Iterable[str]]
) -> dict[str, list[str]]:
    """For each worker, the fields in which it differs from the most common value among the
    workers serving the same queue (a tie flags every side)."""
    flagged: dict[str, set[str]] = defaultdict(set)
    by_queue: dict[str, list[str]] = defaultdict(list)
    for worker, names in queues.items():
        if worker in fingerprints:
            for queue in names:
                by_queue[queue].append(worker)
    for workers in by_queue.values():
        if len(workers) < 2:
            continue
        for field in COMPARED:
            counts: dict[object, int] = defaultdict(int)
            for worker in workers:
                counts[getattr(fingerprints[worker], field)] += 1
            if len(counts) < 2:
                continue
            top = max(counts.values())
            majority = [value for value, count in counts.items() if count == top]
            for worker in workers:
                value = getattr(fingerprints[worker], field)
                if len(majority) > 1 or value not in majority:
                    flagged[worker].add(field)
    return {worker: [f for f in COMPARED if f in fields] for worker, fields in flagged.items()}
