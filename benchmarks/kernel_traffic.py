"""How far the kernel figures (memory traffic, the DRAM model, launches) put each kernel
exercise's wrong variants from its limit, on the CPU, in Triton's interpreter.

    .venv/bin/python benchmarks/kernel_traffic.py [--exercise triton-softmax ...] [--sandbox bwrap]

Grades the reference and every wrong variant of each kernel exercise (an exercise that preloads
triton) with the validation seed, and prints every kernel-figure check it measured: the ratio
to the reference, the limit (threshold x (1 + tolerance)), and the margin (the ratio over the
limit for a variant that must fail, the limit over the ratio for one that must pass), so that a
threshold too close to either side shows. Counts are exact, so one grading each is enough.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from grader.catalog import load_catalog
from grader.engine import grade
from grader.settings import get_settings
from grader.validate import VALIDATION_SEED
from sandbox import get_backend

KERNEL_METRICS = ("traffic", "dram", "launches")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--exercise", action="append", help="a kernel exercise (default: all of them)")
    parser.add_argument("--sandbox", default="bwrap")
    args = parser.parse_args()
    settings = get_settings()
    catalog = load_catalog(settings.exercises_dir, settings.solutions_dir)
    chosen = (
        [catalog.get(s) for s in args.exercise]
        if args.exercise
        else [e for e in catalog if "triton" in e.spec.preload]
    )
    backend = get_backend(args.sandbox)
    console = Console(width=140)
    table = Table(title="kernel figures: ratio to the reference against the limit (CPU, interpreter)")
    for column in ("exercise", "graded", "verdict", "check", "ratio", "limit", "margin"):
        table.add_column(column)
    narrowest: dict[str, float] = {}
    try:
        for exercise in chosen:
            subjects = [("reference", exercise.solution)] + [
                (f"wrong/{w.name}", w.path) for w in exercise.wrong
            ]
            for subject, path in subjects:
                verdict = grade(
                    exercise, path.read_bytes(), backend, seed=VALIDATION_SEED, filename=path.name
                )
                for perf in verdict.performance:
                    if perf.metric not in KERNEL_METRICS:
                        continue
                    limit = perf.threshold * (1 + perf.tolerance)
                    if perf.passed:
                        margin = limit / max(perf.ratio, 1e-9)
                        side = "under"
                    else:
                        margin = perf.ratio / limit
                        side = "over"
                    key = f"{side} the limit"
                    narrowest[key] = min(narrowest.get(key, float("inf")), margin)
                    table.add_row(
                        exercise.slug,
                        subject,
                        verdict.status.value,
                        perf.name,
                        f"{perf.ratio:.2f}x",
                        f"{limit:.2f}x",
                        f"{margin:.1f}x {side}",
                    )
    finally:
        backend.close()
    console.print(table)
    for side, margin in sorted(narrowest.items()):
        console.print(f"narrowest margin {side}: {margin:.2f}x")


if __name__ == "__main__":
    main()
