"""`grader exercise validate`: proof that an exercise's hidden tests do their job.

The reference must pass (and every declared performance threshold must be measured), the
skeleton must fail, and every known-wrong solution must get exactly the verdict it declares
(and, when it names them, fail the tests that are meant to catch it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader.catalog import Exercise
from grader.engine import grade
from grader.events import EventSink, ignore
from grader.verdict import PerfResult, Status, Verdict
from sandbox import Sandbox

VALIDATION_SEED = 0
TINY_CALL_S = 1e-4


@dataclass(frozen=True)
class Check:
    exercise: str
    subject: str  # "reference" | "skeleton" | "wrong/<name>"
    expected: str
    got: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


def validate_exercise(
    exercise: Exercise,
    backend: Sandbox,
    *,
    events: EventSink = ignore,
    on_check: Callable[[Check], None] | None = None,
    seeds: int = 1,
) -> list[Check]:
    """Grade the reference, the skeleton and every wrong variant with the validation seed; with
    `seeds` > 1, also grade the reference's correctness on seeds 1 .. seeds - 1, so that a test
    whose tolerance or data only holds for some inputs fails here, not in front of a student."""
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        if on_check is not None:
            on_check(check)

    reference = _grade(exercise, exercise.solution, backend, events)
    add(_reference_check(exercise, reference))
    for seed in range(VALIDATION_SEED + 1, VALIDATION_SEED + seeds):
        verdict = _grade(exercise, exercise.solution, backend, events, seed=seed, measure=False)
        add(_expect(exercise, f"reference (seed {seed})", verdict, Status.PASSED, ()))
    skeleton = _grade(exercise, exercise.skeleton, backend, events)
    add(_expect(exercise, "skeleton", skeleton, Status.FAILED, ()))
    for wrong in exercise.wrong:
        verdict = _grade(exercise, wrong.path, backend, events)
        add(_expect(exercise, f"wrong/{wrong.name}", verdict, wrong.expect, wrong.caught_by))
    return checks


def _grade(
    exercise: Exercise,
    path: Path,
    backend: Sandbox,
    events: EventSink,
    *,
    seed: int = VALIDATION_SEED,
    measure: bool = True,
) -> Verdict:
    # a fixed seed: validation must be reproducible (other seeds: `--seeds`, or `grade --seed`)
    return grade(
        exercise, path.read_bytes(), backend, events=events, filename=path.name, seed=seed, measure=measure
    )


def _reference_check(exercise: Exercise, verdict: Verdict) -> Check:
    measured = {p.name for p in verdict.performance}
    unmeasured = sorted(set(exercise.spec.performance) - measured)
    ok = verdict.status is Status.PASSED and not unmeasured
    detail = _why(verdict) if verdict.status is not Status.PASSED else ""
    if unmeasured:
        detail = f"declared in exercise.toml but never measured: {', '.join(unmeasured)}"
    tiny = [
        p.name
        for p in verdict.performance
        if p.metric == "time" and p.kind == "ratio" and 0 < p.reference_value < TINY_CALL_S
    ]
    if ok and tiny:
        detail = (
            f"warning: {', '.join(tiny)}: each timed call takes the reference under {TINY_CALL_S * 1e3:g} ms;"
            " the exchange's fixed costs then weigh on the ratio: give the calls more work"
        )
    return Check(
        exercise.slug, "reference", "passed", verdict.status.value, ok, detail, verdict.timings.total_s
    )


def _expect(
    exercise: Exercise, subject: str, verdict: Verdict, expected: Status, caught_by: tuple[str, ...]
) -> Check:
    ok = verdict.status is expected
    detail = "" if ok else _why(verdict)
    failing = {t.name.split("[", 1)[0] for t in verdict.failing_tests()} | {
        t.name for t in verdict.failing_tests()
    }
    missed = [name for name in caught_by if name not in failing]
    if ok and missed:
        ok, detail = False, f"expected to be caught by {', '.join(missed)}, which passed"
    if ok and expected is Status.TOO_SLOW:
        detail = "; ".join(_figure(p) for p in verdict.performance if not p.passed)
    return Check(
        exercise.slug, subject, expected.value, verdict.status.value, ok, detail, verdict.timings.total_s
    )


def _figure(perf: PerfResult) -> str:
    if perf.kind == "exponent":
        return f"{perf.name} n^{perf.ratio:.2f} (limit n^{perf.threshold:g})"
    return f"{perf.name} {perf.ratio:.1f}x (limit {perf.threshold:g}x)"


def _why(verdict: Verdict) -> str:
    failing = verdict.failing_tests()
    if failing:
        first = failing[0]
        return f"{first.name}: {first.message}"[:300]
    return (verdict.message or verdict.summary)[:300]
