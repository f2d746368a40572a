"""The GPU paths, on a real device: a runner sees exactly its one GPU, the fork server never
initialises CUDA, and a kernel exercise is graded on the device end to end, its speed timed.

Skipped where there is no GPU (tests/conftest.py says so in the summary); `scripts/gpu-check.sh`
runs them on a GPU host. There, bubblewrap may not work (a host inside gVisor, say): the tests
then run the instructor's own code with the `none` backend, and say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.catalog import load_catalog
from grader.devicecheck import backend_name
from grader.engine import grade
from grader.remote import RemoteModule, RunnerClient
from grader.verdict import Outcome, Status
from sandbox import Limits, Sandbox, SandboxUnavailable, get_backend

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "cuda:0"
LIMITS = Limits(call_seconds=60, cpu_seconds=300, memory_mb=8192)
PROBE = """
import os
import torch


def visible():
    return [torch.cuda.device_count(), os.environ.get("CUDA_VISIBLE_DEVICES", "")]


def on_device(x):
    return (x.to("cuda") * 2).cpu()
"""


@pytest.fixture(scope="module")
def gpu_backend() -> Iterator[Sandbox]:
    """bubblewrap where it works, else `none` (the code these tests run is our own)."""
    backend = get_backend(backend_name())
    yield backend
    backend.close()


def test_a_runner_sees_exactly_its_one_gpu(gpu_backend: Sandbox) -> None:
    client = RunnerClient(gpu_backend.start(LIMITS, device=DEVICE), LIMITS)
    try:
        client.handshake()
        runtime = client.init(preload=["torch"], device=DEVICE)
        module = RemoteModule(client, "probe", client.load("probe", PROBE))
        assert runtime.device == "cuda:0"
        assert module.visible() == [1, "0"]
        import torch

        assert torch.equal(module.on_device(torch.ones(3)), torch.full((3,), 2.0))
    finally:
        client.close()


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(
                    Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


def test_the_fork_server_never_initialises_cuda() -> None:
    """The zygote imports torch for the GPU's runners but never touches the driver: a CUDA
    context made before fork() is unusable in every child."""
    from sandbox.fork import ForkingBwrap

    backend = ForkingBwrap()
    try:
        backend.check()
    except SandboxUnavailable as exc:
        backend.close()
        pytest.skip(f"bubblewrap does not work on this host, so there is no fork server: {exc}")
    try:
        runner = RunnerClient(backend.start(LIMITS, device=DEVICE), LIMITS)
        runner.handshake()
        runner.init(preload=["torch"], device=DEVICE)
        module = RemoteModule(runner, "probe", runner.load("probe", PROBE))
        import torch

        assert torch.equal(module.on_device(torch.ones(2)), torch.full((2,), 2.0))  # the runner uses CUDA
        server = backend.server(DEVICE)
        processes = _descendants(server.popen.pid)
        zygotes = [
            pid
            for pid in processes
            if b"grader.runner.zygote" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and Path(f"/proc/{pid}/status").read_text().count("Uid:\t0\t") == 1
        ]
        assert zygotes, "no fork server process found"
        for pid in zygotes:
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "libcuda.so" not in maps, f"the fork server {pid} loaded the CUDA driver"
        runner.close()
    finally:
        backend.close()


def test_a_kernel_exercise_is_graded_on_the_gpu_end_to_end(gpu_backend: Sandbox) -> None:
    catalog = load_catalog(ROOT / "exercises", ROOT / "solutions")
    exercise = catalog["triton-softmax"]
    verdict = grade(exercise, exercise.solution.read_bytes(), gpu_backend, device=DEVICE, seed=0)
    assert verdict.status is Status.PASSED, verdict.summary
    assert verdict.provenance.device == DEVICE
    timed = [p for p in verdict.performance if p.metric == "device_time"]
    assert timed and all(p.source == "device" and p.pairs >= 5 for p in timed)
    # the kernel figures are counted where kernels are interpreted, not here
    assert not [p for p in verdict.performance if p.metric in ("traffic", "dram", "launches")]
    assert any(t.outcome is Outcome.SKIPPED for t in verdict.tests)
    naive = next(w for w in exercise.wrong if w.expect is Status.TOO_SLOW)
    slow = grade(exercise, naive.path.read_bytes(), gpu_backend, device=DEVICE, seed=0)
    assert slow.status is not Status.PASSED, f"wrong/{naive.name} passed on the GPU"


def test_a_gpu_exercise_without_kernels_is_graded_on_the_gpu(gpu_backend: Sandbox) -> None:
    catalog = load_catalog(ROOT / "exercises", ROOT / "solutions")
    exercise = catalog["online-softmax"]
    verdict = grade(exercise, exercise.solution.read_bytes(), gpu_backend, device=DEVICE, seed=0)
    assert verdict.status is Status.PASSED, verdict.summary
    assert verdict.provenance.device == DEVICE
