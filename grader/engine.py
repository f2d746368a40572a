"""Grading one submission: static checks, the sandboxed runner, the tests, the verdict.

`grade` never raises for anything the submission does: a student failing is a verdict. Our own
failures (no sandbox, a broken exercise, an inconclusive measurement) become `system_error`
verdicts with a message for the operator.
"""

from __future__ import annotations

import datetime
import hashlib
import platform
import secrets
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass

from grader import __version__, fingerprint
from grader.catalog import Exercise
from grader.events import Event, EventKind, EventSink, ignore
from grader.harness.plugin import GradingPlugin, run_pytest
from grader.harness.results import Results
from grader.harness.session import GradingSession
from grader.measurement.protocol import FixedPairs
from grader.notebooks.reader import is_notebook
from grader.pool import WarmPool
from grader.static import Rejected, check_source
from grader.verdict import (
    NotebookSource,
    Outcome,
    Provenance,
    Status,
    TestResult,
    Timings,
    Verdict,
    count,
    truncate,
    worst,
)
from sandbox import Sandbox, SandboxError
from sandbox.base import SandboxUnavailable

PYTEST_OK = (0, 1)  # all passed, some failed; anything else means the run itself broke


def grade(
    exercise: Exercise,
    raw: bytes,
    backend: Sandbox,
    *,
    public_only: bool = False,
    measure: bool = True,
    seed: int | None = None,
    device: str = "cpu",
    events: EventSink = ignore,
    filename: str = "",
    size: int | None = None,
    pool: WarmPool | None = None,
    calibration: Mapping[str, FixedPairs] | None = None,
) -> Verdict:
    """Grade `raw` (the submitted file's bytes) against `exercise`. `device` is the GPU this
    grading may use ("cuda:N"); exercises that do not declare a GPU run on the CPU.
    `calibration` is for `grader.calibrate` only: the time checks it names are measured on the
    pairs it says, and no other performance check is."""
    started = time.perf_counter()
    device = device if exercise.spec.resources == "gpu" else "cpu"
    if seed is None:  # fresh hidden inputs for every grading; the seed is kept in the verdict
        seed = secrets.randbits(31)
    host = fingerprint.of_host(backend.name, backend.image, backend.image_digest, device)
    provenance = Provenance(
        exercise=exercise.slug,
        exercise_version=exercise.version,
        submission_sha256=hashlib.sha256(raw).hexdigest(),
        sandbox=backend.name,
        sandbox_start=backend.start_method,
        image=backend.image,
        image_digest=host.image_digest,
        host=host.host,
        runtime_digest=host.runtime_digest,
        python=platform.python_version(),
        cuda=host.cuda if device != "cpu" else None,
        triton=host.triton,
        gpu=host.gpu,
        driver=host.driver,
        grader_version=__version__,
        seed=seed,
        graded_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    limits = exercise.spec.sandbox_limits.to_dict()
    notebook: NotebookSource | None = None
    try:
        if is_notebook(filename, raw):
            notebook, raw = _from_notebook(exercise, raw, filename, size)
            filename, size = notebook.module, None
        source = check_source(raw, exercise.spec, filename, size)
    except Rejected as exc:
        timings = Timings(static_s=time.perf_counter() - started, total_s=time.perf_counter() - started)
        return Verdict(
            status=Status.REJECTED,
            summary="not graded: " + exc.message.splitlines()[0],
            message=exc.message,
            limits=limits,
            timings=timings,
            provenance=provenance,
            notebook=notebook,
        )
    static_s = time.perf_counter() - started
    session = GradingSession(
        exercise,
        source,
        backend,
        seed=seed,
        device=device,
        events=events,
        measure=measure,
        pool=pool,
        calibration=calibration,
    )
    session.timings.static_s = static_s
    try:
        verdict = _run(session, public_only, provenance, limits)
    except (SandboxError, SandboxUnavailable) as exc:
        verdict = _system_error(f"sandbox failure: {exc}", provenance, limits, session.timings)
    except Exception as exc:  # noqa: BLE001 - a bug of ours: still a verdict, with what to report
        where = "".join(traceback.format_exception(exc)[-3:])
        verdict = _system_error(
            f"internal error: {truncate(where, 2000)}", provenance, limits, session.timings
        )
    finally:
        session.close()
    verdict.timings.total_s = time.perf_counter() - started
    verdict.notebook = notebook
    events(Event(EventKind.DONE, verdict.status.label))
    return verdict


def _from_notebook(
    exercise: Exercise, raw: bytes, filename: str, size: int | None
) -> tuple[NotebookSource, bytes]:
    """The module a notebook's solution cells make, and how it was made."""
    from grader.notebooks import module_from_notebook

    try:
        extraction = module_from_notebook(raw, exercise, filename, size)
    except Rejected:
        raise
    except Exception as exc:  # noqa: BLE001 - a notebook shaped in a way we did not foresee
        raise Rejected(
            f"{filename or 'the notebook'} could not be read as a notebook ({type(exc).__name__})."
        ) from None
    return extraction.describe(filename or "notebook.ipynb"), extraction.source.encode("utf-8")


def _run(
    session: GradingSession, public_only: bool, provenance: Provenance, limits: dict[str, object]
) -> Verdict:
    exercise = session.exercise
    session.start()
    if session.runtime is not None:
        provenance.torch = session.runtime.torch
        provenance.device = session.runtime.device
    if session.student is not None:
        provenance.measured_by = session.student.process.measured_by
    paths = [str(exercise.public_tests.resolve())]
    if not public_only:
        paths.append(str(exercise.hidden_tests.resolve()))
    with tempfile.TemporaryDirectory(prefix="grader-pytest-") as workdir:
        results = run_pytest(GradingPlugin(session), paths, workdir)
    session.timings.tests_s = results.tests_s
    session.timings.performance_s = results.performance_s
    return verdict_of(results, Runner.left_by(session), provenance, limits, session.timings)


@dataclass(frozen=True)
class Runner:
    """What the submission's runner left when the tests ended."""

    death: tuple[Status, str] | None = None  # its status and the words shown, if it died
    import_error: str | None = None  # the submission's module failed to import
    output: str = ""  # what it printed, as it may be shown
    output_bytes: int = 0  # how much it printed before the hidden tests
    output_withheld: bool = False  # it printed during the hidden tests
    output_truncated: bool = False

    @classmethod
    def left_by(cls, session: GradingSession) -> Runner:
        student = session.student
        import_error = str(session.import_error) if session.import_error is not None else None
        if student is None:
            return cls(import_error=import_error)
        student.drain_output()  # the runner flushed before its last reply: all of it is in the pipe
        death, output = student.death, student.output
        return cls(
            death=(death.status, death.shown()) if death is not None else None,
            import_error=import_error,
            output=output.text(),
            output_bytes=output.total - output.withheld,
            output_withheld=bool(output.withheld),
            output_truncated=output.truncated,
        )


def verdict_of(
    results: Results, runner: Runner, provenance: Provenance, limits: dict[str, object], timings: Timings
) -> Verdict:
    """The verdict, from what the tests observed and what the runner left. Pure: tested as a
    table. A run that broke, collected nothing or left a test without a result is ours
    (`system_error`), never a pass."""
    if results.exit_code not in PYTEST_OK or results.collect_errors or not results.tests:
        detail = "; ".join(results.collect_errors) or f"pytest exited with code {results.exit_code}"
        return _system_error(
            f"the exercise's tests could not run: {truncate(detail, 2000)}", provenance, limits, timings
        )
    if results.missing:
        return _system_error(
            f"tests without a result: {', '.join(results.missing)}", provenance, limits, timings
        )
    if results.system_error:
        return _system_error(results.system_error, provenance, limits, timings)
    tests = results.tests
    status, message = judge(runner.death, runner.import_error, results.implied, [r.outcome for r in tests])
    return Verdict(
        status=status,
        summary=summarise(status, tests, message),
        message=message,
        score=round(sum(r.weight for r in tests if r.outcome is Outcome.PASSED), 6),
        max_score=round(sum(r.weight for r in tests), 6),
        tests=tests,
        performance=results.performance,
        output=runner.output,
        output_bytes=runner.output_bytes,
        output_withheld=runner.output_withheld,
        output_truncated=runner.output_truncated,
        limits=limits,
        timings=timings,
        provenance=provenance,
    )


def judge(
    death: tuple[Status, str] | None,
    import_error: str | None,
    implied: list[tuple[Status, str]],
    outcomes: list[Outcome],
) -> tuple[Status, str]:
    """The status of a grading and the message that explains it, from what was observed: how
    the runner died (its status and the words shown), the import's failure, statuses the
    failures implied (a resource ran out), and the tests' outcomes. Pure: tested as a table."""
    statuses = [Status.PASSED]
    message = ""
    if death is not None:
        statuses.append(death[0])
        message = death[1]
    if import_error is not None:
        statuses.append(Status.RUNTIME_ERROR)
        message = f"your module failed to import: {import_error}"
    for status, why in implied:
        statuses.append(status)
        message = message or why
    if any(o in (Outcome.FAILED, Outcome.ERROR) for o in outcomes):
        statuses.append(Status.FAILED)
    if Outcome.TOO_SLOW in outcomes:
        statuses.append(Status.TOO_SLOW)
    return worst(statuses), message


def summarise(status: Status, results: list[TestResult], message: str = "") -> str:
    counts = count(results)
    if status is Status.PASSED:
        skipped = [r for r in results if r.outcome is Outcome.SKIPPED]
        if not skipped:
            return f"passed all {counts.passed} tests"
        reasons = sorted({r.message for r in skipped if r.message})
        why = f": {'; '.join(reasons)}" if reasons else ""
        return f"passed all {counts.passed} tests that ran; {len(skipped)} not run here{why}"
    if status is Status.TOO_SLOW:
        slow = [r.name for r in results if r.outcome is Outcome.TOO_SLOW]
        return f"correct, but over a performance limit in {', '.join(slow)}"
    if status is Status.FAILED:
        not_run = f" ({counts.not_run} not run)" if counts.not_run else ""
        return f"{counts.passed} of {counts.total} tests passed{not_run}"
    return message.splitlines()[0] if message else status.label


def _system_error(
    message: str, provenance: Provenance, limits: dict[str, object], timings: Timings
) -> Verdict:
    return Verdict(
        status=Status.SYSTEM_ERROR,
        summary="the grader failed (not your fault); this submission will be graded again",
        message=message,
        limits=limits,
        timings=timings,
        provenance=provenance,
    )
