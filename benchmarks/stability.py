"""Do speed verdicts hold on a busy machine? Re-grades two submissions, one at about 0.7x and one
at about 1.4x an exercise's speed limit, many times each while other processes keep cores busy,
and prints how many verdicts flipped, how many ended in a system error, the spread of the
measured ratios, and how far a single pair of timed blocks read over its grading's median (the
margin behind the early "three times over" decision).

    .venv/bin/python benchmarks/stability.py [--repeats 20] [--hog 1] [--exercise causal-masking]
        [--through direct|queue] [--workers 2] [--factors 0.7,1.4]

The two submissions are the exercise's reference with its measured function made to do its work
k times over. A call's fixed costs (its inputs and output crossing the sandbox's boundary) are
the same whatever k, so the ratio grows by less than k: a quiet calibration grading at k = 2
finds the slope, k is picked for each target, and each is graded once more on the quiet machine:
that verdict and ratio are what the busy gradings must reproduce. `--through direct` grades in
this process, one at a time, as `grader grade` does; `--through queue` enqueues all of them at
once to W `grader worker` processes (the embedded default is two workers on two cores), so
gradings also run beside each other. `--hog N` keeps N cores busy meanwhile (benchmarks/hog.py).
Target: 0 flips and 0 system errors.
"""

from __future__ import annotations

import argparse
import collections
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.throughput import grading_stack  # noqa: E402
from grader.catalog import Exercise, load_catalog  # noqa: E402
from grader.engine import grade  # noqa: E402
from grader.verdict import Verdict  # noqa: E402
from sandbox import select_backend  # noqa: E402

SLOWED = """

_measured_{name} = {name}


def {name}(*args, **kwargs):  # the same work, {k} times over
    for _ in range({k} - 1):
        _measured_{name}(*args, **kwargs)
    return _measured_{name}(*args, **kwargs)
"""


def slowed(exercise: Exercise, function: str, k: int) -> bytes:
    return (exercise.solution.read_text() + SLOWED.format(name=function, k=k)).encode()


def outcome(verdict: Verdict | dict, name: str) -> tuple[str, float | None, float | None]:
    """The verdict's status, the threshold's ratio, and how far its slowest single pair was over
    the median of its pairs (a factor: 1.2 is 20% over; only a pair that reads slower than the
    truth can make a fast submission look slow)."""
    data = verdict if isinstance(verdict, dict) else verdict.model_dump(mode="json")
    found = [p for p in data.get("performance", []) if p["name"] == name]
    if not found:
        return str(data["status"]), None, None
    logs = [math.log(s / r) for s, r in found[0].get("samples") or [] if s > 0 and r > 0]
    stray = math.exp(max(logs) - statistics.median(logs)) if logs else None
    return str(data["status"]), found[0]["ratio"], stray


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hog", type=int, default=1, help="cores kept busy meanwhile")
    parser.add_argument("--catalog", type=Path, default=ROOT)
    parser.add_argument("--exercise", default="causal-masking")
    parser.add_argument("--function", default="scaled_dot_product_attention", help="the measured function")
    parser.add_argument("--threshold", default="speed", help="the [performance.NAME] to judge")
    parser.add_argument("--through", choices=("direct", "queue"), default="direct")
    parser.add_argument("--workers", type=int, default=2, help="with --through queue")
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--factors", default="0.7,1.4", help="target ratios, as fractions of the limit")
    args = parser.parse_args()
    exercises, solutions = args.catalog / "exercises", args.catalog / "solutions"
    exercise = load_catalog(exercises, solutions).get(args.exercise)
    spec = exercise.spec.performance[args.threshold]
    limit = spec.threshold * (1 + spec.tolerance)
    backend = select_backend(args.sandbox, untrusted=True, fork=True)
    filename = f"{exercise.spec.entrypoint}.py"

    def quiet(k: int) -> tuple[str, float | None]:
        status, ratio, _ = outcome(
            grade(exercise, slowed(exercise, args.function, k), backend, filename=filename), args.threshold
        )
        return status, ratio

    _, doubled = quiet(2)
    slope = max((doubled or 2.0) - 1, 0.05)  # the ratio gained per extra pass over the work
    kinds = {}
    for factor in (float(f) for f in args.factors.split(",")):
        k = max(1, round(1 + (factor * limit - 1) / slope))
        status, ratio = quiet(k)
        at = f"{ratio:.2f}x quiet, {ratio / limit:.2f} of the limit" if ratio else "no ratio"
        kinds[f"{k}x the work ({at})"] = (slowed(exercise, args.function, k), status)
    console = Console(width=140)  # the table on one line per submission
    console.print(
        f"{args.exercise}: limit {limit:g}x; {args.repeats} gradings of each, {args.hog} core(s) busy, "
        f"{args.through}" + (f" with {args.workers} workers" if args.through == "queue" else "")
    )
    hog = (
        subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "hog.py"), str(args.hog)])
        if args.hog
        else None
    )
    results: dict[str, list[tuple[str, float | None, float | None]]] = collections.defaultdict(list)
    started = time.monotonic()
    try:
        if args.through == "direct":
            for i in range(args.repeats):
                for label, (source, _) in kinds.items():
                    verdict = grade(exercise, source, backend, filename=filename)
                    results[label].append(outcome(verdict, args.threshold))
                console.print(
                    f"[dim]round {i + 1}/{args.repeats} at {time.monotonic() - started:.0f} s[/dim]"
                )
            backend.close()
        else:
            with grading_stack(
                sandbox=args.sandbox,
                mode="forkserver",
                workers=args.workers,
                exercises=exercises,
                solutions=solutions,
            ) as stack:
                ids = {
                    label: [stack.submit(exercise, source) for _ in range(args.repeats)]
                    for label, (source, _) in kinds.items()
                }
                for label, rows in ((label, stack.wait(i)) for label, i in ids.items()):
                    results[label] = [outcome(r.verdict or {"status": r.state}, args.threshold) for r in rows]
    finally:
        backend.close()
        if hog is not None:
            hog.terminate()
            hog.wait()
    table = Table(
        title=f"speed verdicts beside {args.hog} busy core(s), {time.monotonic() - started:.0f} s in all"
    )
    for column in (
        "submission",
        "expected",
        "verdicts",
        "flips",
        "system errors",
        "ratio min / median / max",
        "slowest pair",
    ):
        table.add_column(column, justify="right")
    total_flips = total_errors = 0
    for label, (_, expected) in kinds.items():
        statuses = collections.Counter(s for s, _, _ in results[label])
        errors = statuses["system_error"]
        flips = sum(n for s, n in statuses.items() if s not in (expected, "system_error"))
        ratios = sorted(r for _, r, _ in results[label] if r is not None)
        spread = f"{ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f}" if ratios else "-"
        strays = [x for _, _, x in results[label] if x is not None]
        farthest = f"{max(strays):.2f}x its grading's median" if strays else "-"
        table.add_row(
            label,
            expected,
            ", ".join(f"{s} {n}" for s, n in statuses.items()),
            str(flips),
            str(errors),
            spread,
            farthest,
        )
        total_flips, total_errors = total_flips + flips, total_errors + errors
    console.print(table)
    console.print(f"flips: {total_flips}, system errors: {total_errors}")
    sys.exit(1 if total_flips or total_errors else 0)


if __name__ == "__main__":
    main()
