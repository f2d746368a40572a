"""`grader exercise validate`: proof that an exercise's hidden tests do their job.

The reference must pass (and every declared performance threshold must be measured), the
skeleton must fail, and every known-wrong solution must get exactly the verdict it declares
(and, when it names them, fail the tests that are meant to catch it).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from grader.catalog import Exercise
from grader.engine import grade
from grader.events import EventSink, ignore
from grader.measurement.protocol import measurable_on
from grader.verdict import PerfResult, Status, Verdict
from sandbox import Sandbox

VALIDATION_SEED = 0
TINY_CALL_S = 1e-4
CODE_ROOTS = ("grader", "sandbox")  # the code whose change makes an earlier report stale


Started = Callable[[str, int, int], None]  # a check begins: its subject, k of n


@dataclass(frozen=True)
class Check:
    exercise: str
    subject: str  # "reference" | "skeleton" | "wrong/<name>"
    expected: str
    got: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0
    failing: list[str] = dataclasses.field(default_factory=list)  # the tests it failed, by name


def validate_exercise(
    exercise: Exercise,
    backend: Sandbox,
    *,
    events: EventSink = ignore,
    on_check: Callable[[Check], None] | None = None,
    seeds: int = 1,
    on_start: Started | None = None,
    device: str = "cpu",
) -> list[Check]:
    """Grade the reference, the skeleton and every wrong variant with the validation seed (GPU
    exercises on `device`, "cuda:N", where one is given); with
    `seeds` > 1, also grade the reference's correctness on seeds 1 .. seeds - 1, so that a test
    whose tolerance or data only holds for some inputs fails here, not in front of a student.
    `on_start(subject, k, n)` is told as each check begins, `on_check` as it ends."""
    checks: list[Check] = []
    total = check_count(exercise, seeds)

    def start(subject: str) -> None:
        if on_start is not None:
            on_start(subject, len(checks) + 1, total)

    def add(check: Check) -> None:
        checks.append(check)
        if on_check is not None:
            on_check(check)

    start("reference")
    reference = _grade(exercise, exercise.solution, backend, events, device=device)
    add(_reference_check(exercise, reference))
    for seed in range(VALIDATION_SEED + 1, VALIDATION_SEED + seeds):
        start(f"reference (seed {seed})")
        verdict = _grade(
            exercise, exercise.solution, backend, events, seed=seed, measure=False, device=device
        )
        add(_expect(exercise, f"reference (seed {seed})", verdict, Status.PASSED, ()))
    start("skeleton")
    skeleton = _grade(exercise, exercise.skeleton, backend, events, device=device)
    add(_expect(exercise, "skeleton", skeleton, Status.FAILED, ()))
    for wrong in exercise.wrong:
        start(f"wrong/{wrong.name}")
        verdict = _grade(exercise, wrong.path, backend, events, device=device)
        add(_expect(exercise, f"wrong/{wrong.name}", verdict, wrong.expect, wrong.caught_by))
    return checks


def check_count(exercise: Exercise, seeds: int = 1) -> int:
    """How many checks validating `exercise` makes: the reference (on each seed), the skeleton and
    every wrong variant."""
    return seeds + 1 + len(exercise.wrong)


def validate_cached(
    exercise: Exercise,
    backend: Sandbox,
    cache: Path | None,
    *,
    events: EventSink = ignore,
    on_check: Callable[[Check], None] | None = None,
    seeds: int = 1,
    on_start: Started | None = None,
    device: str = "cpu",
) -> list[Check]:
    """`validate_exercise`, unless `cache` holds a report on which every check held for this very
    version (its files), sandbox and grader code, on at least as many seeds: then that report,
    its checks marked as kept. Only reports that hold are kept: a failure is looked at afresh."""
    kept = kept_report(exercise, _place(backend.name, device), seeds, cache)
    if kept is not None:
        for check in kept:
            if on_check is not None:
                on_check(check)
        return kept
    checks = validate_exercise(
        exercise, backend, events=events, on_check=on_check, seeds=seeds, on_start=on_start, device=device
    )
    if cache is not None and checks and all(c.ok for c in checks):
        path = _report_path(exercise, _place(backend.name, device), cache)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"seeds": seeds, "checks": [dataclasses.asdict(c) for c in checks]}))
        partial.replace(path)
    return checks


def _place(backend: str, device: str) -> str:
    """Where a validation ran, for its cache key: the sandbox, and the GPU if any."""
    return backend if device == "cpu" else f"{backend}+{device}"


def kept_report(exercise: Exercise, backend: str, seeds: int, cache: Path | None) -> list[Check] | None:
    """The report kept in `cache` for this version, if one covers `seeds` (see validate_cached)."""
    if cache is None:
        return None
    try:
        data = json.loads(_report_path(exercise, backend, cache).read_text())
        if int(data["seeds"]) < seeds:
            return None
        checks = [Check(**item) for item in data["checks"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None  # none kept, or unreadable: validate again
    return [dataclasses.replace(c, detail=f"{c.detail} (kept report)".strip()) for c in checks]


def _report_path(exercise: Exercise, backend: str, cache: Path) -> Path:
    key = hashlib.sha256(f"{exercise.version}\0{backend}\0{_code_hash()}".encode()).hexdigest()[:24]
    return cache / f"{exercise.slug}-{key}.json"


@functools.cache
def _code_hash() -> str:
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for top in CODE_ROOTS:
        for path in sorted((root / top).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def validate_in_parallel(
    exercises: list[Exercise],
    backend: str,
    *,
    fork: bool,
    jobs: int,
    seeds: int = 1,
    cache: Path | None = None,
    on_start: Callable[[str, str, int, int], None] | None = None,
    device: str = "cpu",
) -> Iterator[tuple[Exercise, list[Check] | BaseException]]:
    """Validate each exercise in a process of its own, `jobs` at a time (pytest runs in-process,
    so gradings cannot share one); yields each exercise's checks, or what stopped it, as it ends.
    `on_start(slug, subject, k, n)` is told, in this process, as each check begins."""
    pending = []
    for exercise in exercises:
        kept = kept_report(exercise, _place(backend, device), seeds, cache)
        if kept is None:
            pending.append(exercise)
        else:
            yield exercise, kept
    if not pending:
        return
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited threads or locks
    started: multiprocessing.Queue[tuple[str, str, int, int]] = context.Queue()

    def relay() -> None:
        while on_start is not None:
            try:
                on_start(*started.get_nowait())
            except queue.Empty:
                return

    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_report_to, initargs=(started,)
    ) as executor:
        futures = {
            executor.submit(_validate_one, exercise, backend, fork, seeds, cache, device): exercise
            for exercise in pending
        }
        waiting = set(futures)
        while waiting:
            finished, waiting = concurrent.futures.wait(
                waiting, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
            )
            relay()
            for future in finished:
                error = future.exception()
                yield futures[future], (future.result() if error is None else error)


_started: multiprocessing.Queue[tuple[str, str, int, int]] | None = None  # in a validating process


def _report_to(started: multiprocessing.Queue[tuple[str, str, int, int]]) -> None:
    global _started
    _started = started


def _validate_one(
    exercise: Exercise, backend: str, fork: bool, seeds: int, cache: Path | None, device: str = "cpu"
) -> list[Check]:
    from sandbox import select_backend

    def on_start(subject: str, k: int, n: int) -> None:
        if _started is not None:
            _started.put((exercise.slug, subject, k, n))

    sandbox = select_backend(backend, untrusted=False, fork=fork)
    try:
        return validate_cached(exercise, sandbox, cache, seeds=seeds, on_start=on_start, device=device)
    finally:
        sandbox.close()


def _grade(
    exercise: Exercise,
    path: Path,
    backend: Sandbox,
    events: EventSink,
    *,
    seed: int = VALIDATION_SEED,
    measure: bool = True,
    device: str = "cpu",
) -> Verdict:
    # a fixed seed: validation must be reproducible (other seeds: `--seeds`, or `grade --seed`)
    return grade(
        exercise,
        path.read_bytes(),
        backend,
        events=events,
        filename=path.name,
        seed=seed,
        measure=measure,
        device=device,
    )


def _reference_check(exercise: Exercise, verdict: Verdict) -> Check:
    measured = {p.name for p in verdict.performance}
    device = verdict.provenance.device
    elsewhere = sorted(
        name for name, spec in exercise.spec.performance.items() if not measurable_on(spec.metric, device)
    )  # device time without a GPU, kernel figures with one: measured on the other kind of host
    unmeasured = sorted(set(exercise.spec.performance) - measured - set(elsewhere))
    ok = verdict.status is Status.PASSED and not unmeasured
    detail = _why(verdict) if verdict.status is not Status.PASSED else ""
    if unmeasured:
        detail = f"declared in exercise.toml but never measured: {', '.join(unmeasured)}"
    elif ok and elsewhere:
        detail = f"not measurable on {device}: {', '.join(elsewhere)}"
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
    failing = {t.function for t in verdict.failing_tests()} | {t.name for t in verdict.failing_tests()}
    missed = [name for name in caught_by if name not in failing]
    if ok and missed:
        ok, detail = False, f"expected to be caught by {', '.join(missed)}, which passed"
    if ok and expected is Status.TOO_SLOW:
        detail = "; ".join(_figure(p) for p in verdict.performance if not p.passed)
    return Check(
        exercise.slug,
        subject,
        expected.value,
        verdict.status.value,
        ok,
        detail,
        verdict.timings.total_s,
        failing=[t.name for t in verdict.failing_tests()],
    )


def _figure(perf: PerfResult) -> str:
    if perf.kind == "exponent":
        return f"{perf.name} n^{perf.ratio:.2f} (limit n^{perf.threshold + perf.tolerance:g})"
    return f"{perf.name} {perf.ratio:.1f}x (limit {perf.threshold:g}x)"


def _why(verdict: Verdict) -> str:
    failing = verdict.failing_tests()
    if failing:
        first = failing[0]
        return f"{first.name}: {first.message}"[:300]
    return (verdict.message or verdict.summary)[:300]
