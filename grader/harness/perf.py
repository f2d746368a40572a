"""The `perf` fixture: performance checks declared in exercise.toml, measured against the
reference running in its own sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grader.events import Event
from grader.harness.feedback import TooSlow
from grader.harness.session import GradingSession
from grader.measurement import protocol
from grader.measurement.protocol import MakeCall
from grader.testing.asserts import assert_close
from grader.testing.calls import Call
from grader.verdict import PerfResult


class ExerciseMisconfigured(Exception):
    """The exercise's tests and its exercise.toml disagree: an authoring bug, never the student's."""


class Perf:
    def __init__(self, session: GradingSession, test: str) -> None:
        self.session = session
        self.test = test

    def measure(
        self,
        name: str,
        make_call: MakeCall,
        *,
        check: Callable[[Any, Any], None] | None = None,
        hint: str = "",
    ) -> PerfResult:
        """Measure the threshold `name` of exercise.toml on calls made by `make_call(rng)`.

        Raises TooSlow (the test's outcome becomes too_slow) when the threshold is missed, and
        GradingFailure when a measured call returned a wrong output.
        """
        spec = self.session.exercise.spec.performance.get(name)
        if spec is None:
            raise ExerciseMisconfigured(f"performance check {name!r} is not declared in exercise.toml")
        self.session.submission()  # raises if the submission is not there to measure
        student = self.session.student
        if student is None:
            raise RuntimeError("no submission runner")
        reference = self.session.reference_client()
        checker = check or _default_check
        self.session.events(Event("performance", f"measuring {name}"))

        def progress(done: int, total: int) -> None:
            self.session.events(Event("performance", f"{name}: pair {done}", done, total))

        if spec.metric == "time":
            result = protocol.time_ratio(name, student, reference, make_call, spec, checker, progress)
        elif spec.metric == "memory":
            result = protocol.memory_ratio(name, student, reference, make_call, spec, checker)
        else:
            result = protocol.probe_ratio(name, student, reference, make_call, spec, checker)
        result.test = self.test
        self.session.performance.append(result)
        if not result.passed:
            raise TooSlow(result, hint)
        return result

    def probe(self, call: Call) -> dict[str, Any]:
        """What one call of the submission allocates and computes (runner-reported)."""
        self.session.submission()
        student = self.session.student
        if student is None:
            raise RuntimeError("no submission runner")
        return protocol.probe(student, call)[1]


def _default_check(actual: Any, expected: Any) -> None:
    assert_close(actual, expected, what="the output of a measured call")
