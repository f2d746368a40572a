"""Grading through the queue: overhead and throughput, cold and warm, bwrap and Docker, 1 and 2
workers, printed as one table.

    .venv/bin/python benchmarks/throughput.py [--submissions 24] [--exercise guarded-sum]
        [--sandboxes bwrap,docker] [--workers 1,2] [--modes cold,warm,forkserver,rq-fork]

For each configuration: a fresh SQLite database and a private Redis, W `grader worker` processes
started and given time to warm up, then N copies of the exercise's reference solution enqueued
at once. Throughput is N over the time from the enqueue to the last verdict. Overhead is, per
submission, the verdict's total time minus the tests' and the performance phase's own time
(sandbox start, runtime import, submission import, pytest and verdict bookkeeping); the table
shows its median and 90th percentile. Modes: `cold` starts every sandbox when it is needed (a
fresh interpreter that imports torch), `warm` takes such sandboxes from the warm pool,
`forkserver` (the workers' default; bwrap only) forks each runner from a fork server that
imported torch once, with the warm pool, and `rq-fork` is RQ's forking worker (cold, for
comparison).
The default exercise is the small `guarded-sum` of the test fixtures (three tests and a timing
check); `--catalog .` picks one of the curriculum.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.catalog import Exercise, load_catalog  # noqa: E402
from grader.jobs import queue as jobqueue  # noqa: E402
from grader.jobs import submissions  # noqa: E402
from grader.store import make_engine, sessions, upgrade  # noqa: E402
from tests.services import RedisServer  # noqa: E402

GRADER = str(Path(sys.executable).with_name("grader"))


@dataclass
class Stack:
    """W `grader worker` processes on a fresh SQLite database and a private Redis."""

    factory: Any
    redis: Any
    directory: Path

    def submit(self, exercise: Exercise, source: bytes) -> int:
        row = submissions.create(self.factory, exercise, source, f"{exercise.spec.entrypoint}.py")
        assert row.job_id is not None
        jobqueue.enqueue(self.redis, row.queue, row.id, row.attempt, row.job_id)
        return row.id

    def wait(self, ids: list[int], timeout: float = 60 * 20) -> list[Any]:
        """The rows of `ids` once every one has its final state."""
        started = time.monotonic()
        while True:
            rows = [submissions.get(self.factory, i) for i in ids]
            if all(r is not None and r.state in ("done", "system_error") for r in rows):
                return rows
            if time.monotonic() - started > timeout:
                raise SystemExit("timed out: see the worker logs in " + str(self.directory))
            time.sleep(0.05)


@contextlib.contextmanager
def grading_stack(
    *, sandbox: str, mode: str, workers: int, exercises: Path, solutions: Path
) -> Iterator[Stack]:
    directory = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    redis_server = RedisServer()  # private, on a unix socket, no persistence
    redis_server.start()
    redis_url = redis_server.url
    database = f"sqlite:///{directory / 'grader.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "GRADER_EXERCISES_DIR": str(exercises),
        "GRADER_SOLUTIONS_DIR": str(solutions),
        "GRADER_SANDBOX": sandbox,
        "GRADER_POOL_SIZE": "2" if mode in ("warm", "forkserver") else "0",
        "GRADER_FORK_RUNNERS": "1" if mode == "forkserver" else "0",
    }
    engine = make_engine(database)
    upgrade(engine)
    procs = []
    try:
        for i in range(workers):
            args = [GRADER, "worker", *(["--fork"] if mode == "rq-fork" else [])]
            log = (directory / f"worker-{i}.log").open("wb")
            procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=log))
            log.close()
        time.sleep(5 if mode == "cold" else 8)  # imports done, pool filled
        yield Stack(sessions(engine), jobqueue.connect(redis_url), directory)
    finally:
        for process in procs:
            process.terminate()
        for process in procs:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.close()
        engine.dispose()
        shutil.rmtree(directory, ignore_errors=True)


def run_config(
    *, sandbox: str, mode: str, workers: int, count: int, exercises: Path, solutions: Path, slug: str
) -> dict[str, float]:
    exercise = load_catalog(exercises, solutions).get(slug)
    source = exercise.solution.read_bytes()
    with grading_stack(
        sandbox=sandbox, mode=mode, workers=workers, exercises=exercises, solutions=solutions
    ) as stack:
        started = time.monotonic()
        ids = [stack.submit(exercise, source) for _ in range(count)]
        rows = stack.wait(ids)
        wall = time.monotonic() - started
    overheads, statuses = [], []
    for r in rows:
        statuses.append(r.status)
        if r.verdict:
            t = r.verdict["timings"]
            overheads.append(t["total_s"] - t["tests_s"] - t["performance_s"])
    overheads.sort()
    return {
        "throughput": count / wall * 60,
        "overhead_median": statistics.median(overheads) if overheads else float("nan"),
        "overhead_p90": overheads[int(0.9 * (len(overheads) - 1))] if overheads else float("nan"),
        "passed": sum(s == "passed" for s in statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=24)
    parser.add_argument("--catalog", type=Path, default=ROOT / "tests" / "fixtures" / "catalog")
    parser.add_argument("--exercise", default="guarded-sum")
    parser.add_argument("--sandboxes", default="bwrap,docker")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--modes", default="cold,warm,forkserver,rq-fork")
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"{args.exercise}: {args.submissions} submissions per configuration")
    for column in ("sandbox", "mode", "workers", "per minute", "overhead median", "overhead p90", "passed"):
        table.add_column(column, justify="right")
    for sandbox in args.sandboxes.split(","):
        for mode in args.modes.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                if mode == "forkserver" and sandbox != "bwrap":
                    continue  # runners are forked from a fork server with bubblewrap only
                console.print(f"[dim]{sandbox}, {mode}, {workers} worker(s)...[/dim]")
                result = run_config(
                    sandbox=sandbox,
                    mode=mode,
                    workers=workers,
                    count=args.submissions,
                    exercises=args.catalog / "exercises",
                    solutions=args.catalog / "solutions",
                    slug=args.exercise,
                )
                table.add_row(
                    sandbox,
                    mode,
                    str(workers),
                    f"{result['throughput']:.1f}",
                    f"{result['overhead_median'] * 1000:.0f} ms",
                    f"{result['overhead_p90'] * 1000:.0f} ms",
                    f"{result['passed']:.0f}/{args.submissions}",
                )
    console.print(table)


if __name__ == "__main__":
    main()
