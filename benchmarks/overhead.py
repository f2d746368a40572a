"""Where grading time goes for one small submission, median of several runs.

    .venv/bin/python benchmarks/overhead.py [--exercise causal-masking] [--runs 5] [--sandbox bwrap]
        [--fork]

Grades the exercise's reference solution end to end and splits the time into phases (static
checks, sandbox start, runtime import inside the sandbox, submission import, tests, performance
phase, and the rest: pytest, the reference, building the verdict). Then measures the pieces on
their own: a bare sandbox start, a round trip of the protocol, and the same grading without a
sandbox, so the sandbox's own cost is visible. `--fork` forks the runners from a fork server
(the default of `grader grade` and the workers) instead of starting a fresh interpreter each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from grader.catalog import load_catalog
from grader.engine import grade
from grader.remote import RemoteModule, RunnerClient
from grader.settings import get_settings
from sandbox import Limits, Sandbox, get_backend

PHASES = (
    "static_s",
    "sandbox_start_s",
    "runtime_import_s",
    "submission_import_s",
    "tests_s",
    "performance_s",
)


def median_iqr(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], 0.0
    q = statistics.quantiles(values, n=4)
    return statistics.median(values), q[2] - q[0]


def grading_phases(exercise_slug: str, backend: Sandbox, runs: int, measure: bool) -> dict[str, list[float]]:
    settings = get_settings()
    exercise = load_catalog(settings.exercises_dir, settings.solutions_dir).get(exercise_slug)
    source = exercise.solution.read_bytes()
    samples: dict[str, list[float]] = {name: [] for name in (*PHASES, "other_s", "total_s")}
    grade(exercise, source, backend, measure=measure)  # warm the trusted side (imports, reference)
    for _ in range(runs):
        verdict = grade(exercise, source, backend, measure=measure)
        if not verdict.passed:
            raise SystemExit(f"the reference did not pass: {verdict.summary} {verdict.message}")
        timings = verdict.timings.model_dump()
        for name in PHASES:
            samples[name].append(timings[name])
        samples["total_s"].append(timings["total_s"])
        samples["other_s"].append(timings["total_s"] - sum(timings[name] for name in PHASES))
    return samples


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bare_start(backend: Sandbox, preload: list[str]) -> None:
    limits = Limits()
    client = RunnerClient(backend.start(limits), limits)
    try:
        client.handshake()
        client.init(preload=preload, device="cpu")
    finally:
        client.close()


def round_trips(backend: Sandbox, calls: int) -> list[float]:
    limits = Limits()
    client = RunnerClient(backend.start(limits), limits)
    try:
        client.handshake()
        client.init(preload=[], device="cpu")
        module = RemoteModule(client, "m", client.load("m", "def f(x):\n    return x\n"))
        return timed(lambda: module.f(1), calls)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exercise", default="causal-masking")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--fork", action="store_true", help="fork runners from a fork server")
    args = parser.parse_args()
    backend = get_backend(args.sandbox, fork=args.fork)
    backend.check()  # a fork server starts here, outside the measured runs
    console = Console()

    where = f"{backend.name} ({'forked' if backend.start_method == 'fork' else 'fresh'} runners)"
    with console.status(f"grading {args.exercise} {args.runs} times in {where}"):
        full = grading_phases(args.exercise, backend, args.runs, measure=True)
    table = Table(title=f"{args.exercise}: grading the reference in {where}, {args.runs} runs")
    for column in ("phase", "median (s)", "IQR (s)", "share"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    total = statistics.median(full["total_s"])
    for name, values in full.items():
        med, iqr = median_iqr(values)
        table.add_row(
            name.removesuffix("_s").replace("_", " "), f"{med:.3f}", f"{iqr:.3f}", f"{med / total:.0%}"
        )
    console.print(table)

    with console.status("measuring the pieces"):
        pieces = {
            f"{backend.name} start, no runtime": timed(lambda: bare_start(backend, []), args.runs),
            f"{backend.name} start + import torch": timed(lambda: bare_start(backend, ["torch"]), args.runs),
            "none start + import torch": timed(lambda: bare_start(get_backend("none"), ["torch"]), args.runs),
        }
        trips = round_trips(backend, 1000)
        quick = grading_phases(args.exercise, backend, args.runs, measure=False)["total_s"]
        unsandboxed = grading_phases(args.exercise, get_backend("none"), args.runs, measure=False)["total_s"]
    table = Table(title="pieces")
    table.add_column("measurement")
    table.add_column("median", justify="right")
    table.add_column("IQR", justify="right")
    for name, values in pieces.items():
        med, iqr = median_iqr(values)
        table.add_row(name, f"{med * 1000:.0f} ms", f"{iqr * 1000:.0f} ms")
    med, iqr = median_iqr(trips)
    table.add_row("protocol round trip (call returning an int)", f"{med * 1e6:.0f} µs", f"{iqr * 1e6:.0f} µs")
    for name, values in (
        (f"grading without performance, {backend.name}", quick),
        ("same, no sandbox", unsandboxed),
    ):
        med, iqr = median_iqr(values)
        table.add_row(name, f"{med * 1000:.0f} ms", f"{iqr * 1000:.0f} ms")
    console.print(table)
    backend.close()


if __name__ == "__main__":
    main()
