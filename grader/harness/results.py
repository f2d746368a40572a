"""What a grading's tests observed: one object, owned by the pytest plugin that records it.

The plugin adds each test's result as the test ends, `Perf` adds each measurement, and the
engine turns the whole into a verdict (`grader.engine.verdict_of`), reading nothing else of the
tests' run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grader.verdict import Outcome, PerfResult, Status, TestResult


@dataclass
class Results:
    tests: list[TestResult] = field(default_factory=list)
    performance: list[PerfResult] = field(default_factory=list)
    implied: list[tuple[Status, str]] = field(default_factory=list)  # statuses failures implied
    system_error: str = ""  # the first failure of ours while a test ran
    collect_errors: list[str] = field(default_factory=list)  # the tests could not be collected
    missing: list[str] = field(default_factory=list)  # expected tests that reported nothing
    exit_code: int | None = None  # pytest's; None until the run ends
    tests_s: float = 0.0  # the tests' run, less the performance tests
    performance_s: float = 0.0  # time in performance tests

    def add(self, result: TestResult, *, performance: bool, duration: float) -> None:
        self.tests.append(result)
        if performance:
            self.performance_s += duration

    def has_failures(self) -> bool:
        """A correctness failure so far (being too slow is not one: other thresholds still count)."""
        return any(r.outcome in (Outcome.FAILED, Outcome.ERROR) for r in self.tests)
