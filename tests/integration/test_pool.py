"""The warm pool: runners started ahead with torch imported, each used once, refilled, and
never left behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from grader.catalog import Catalog
from grader.engine import grade
from grader.pool import WarmPool
from grader.verdict import Status, Verdict
from sandbox import Limits, Sandbox
from tests.conftest import sandbox_processes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture
def pool(bwrap: Sandbox) -> Iterator[WarmPool]:
    warm = WarmPool(bwrap, size=1, keys=1)
    yield warm
    warm.close()
    assert sandbox_processes() == [], "the pool left a runner behind"


def test_gradings_take_warm_runners_and_the_pool_refills(
    toy_catalog: Catalog, pool: WarmPool, bwrap: Sandbox
) -> None:
    exercise = toy_catalog.get("guarded-sum")
    first = grade(exercise, exercise.solution.read_bytes(), bwrap, pool=pool)
    assert first.status is Status.PASSED and pool.misses >= 1  # nothing was warm yet
    assert pool.wait_ready(1, timeout=60)
    misses = pool.misses
    second = grade(exercise, exercise.solution.read_bytes(), bwrap, pool=pool)
    assert second.status is Status.PASSED, second.message
    assert pool.hits >= 1 and second.timings.sandbox_start_s < 0.05

    def waited(verdict: Verdict) -> float:  # starting the sandbox and importing torch
        return verdict.timings.sandbox_start_s + verdict.timings.runtime_import_s

    assert waited(first) > 0.3  # cold: the grading waited for torch to be imported
    assert waited(second) < 0.2  # warm: it had been imported ahead
    assert pool.misses - misses <= 1  # the reference's runner may be cold; the submission's was not
    wrong = grade(
        exercise, (exercise.solution.parent / "wrong" / "transpose.py").read_bytes(), bwrap, pool=pool
    )
    assert wrong.status is Status.FAILED  # a pooled runner grades like a fresh one


def test_a_runner_leaves_the_pool_once_and_is_destroyed_after_use(pool: WarmPool) -> None:
    limits = Limits(cpu_seconds=30, wall_seconds=30)
    pool.start(limits, device="cpu", preload=("torch",), label="submission").close()  # learn the key
    assert pool.wait_ready(1, timeout=60)
    client = pool.start(limits, device="cpu", preload=("torch",), label="reference")
    assert client.label == "reference" and client.deadline - time.monotonic() > 29  # clock restarted
    assert pool.ready() == 0  # taken, not shared
    client.close()
    assert client.process.poll() is not None


def test_a_runner_that_died_waiting_is_never_handed_out(pool: WarmPool) -> None:
    limits = Limits(cpu_seconds=30, wall_seconds=30)
    pool.start(limits, device="cpu", preload=(), label="submission").close()
    assert pool.wait_ready(1, timeout=60)
    [waiting] = [client for ready in pool._ready.values() for client in ready]
    waiting.process.kill()
    waiting.process.popen.wait(timeout=10)
    client = pool.start(limits, device="cpu", preload=(), label="submission")
    assert client is not waiting and client.process.poll() is None
    client.close()


def test_only_the_most_recent_kinds_are_kept_warm(pool: WarmPool) -> None:
    small, large = Limits(memory_mb=512), Limits(memory_mb=1024)
    pool.start(small, device="cpu", preload=(), label="submission").close()
    assert pool.wait_ready(1, timeout=60)
    [old] = [client for ready in pool._ready.values() for client in ready]
    pool.start(large, device="cpu", preload=(), label="submission").close()
    assert old.process.closed  # the pool keeps one kind (keys=1): the other's runners are destroyed
    assert pool.wait_ready(1, timeout=60)
    assert all(key.limits == large for key in pool._ready if pool._ready[key])
