"""Verdict precedence as a table."""

from __future__ import annotations

from typing import Any

import pytest

from grader.engine import Runner, judge, verdict_of
from grader.harness.results import Results
from grader.verdict import Outcome, Provenance, Status, TestResult, Timings, worst

S = Status


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], S.PASSED),
        ([S.PASSED], S.PASSED),
        ([S.PASSED, S.TOO_SLOW], S.TOO_SLOW),
        ([S.TOO_SLOW, S.FAILED], S.FAILED),
        ([S.FAILED, S.RUNTIME_ERROR], S.RUNTIME_ERROR),
        ([S.FAILED, S.TIMEOUT], S.TIMEOUT),
        ([S.OUTPUT_LIMIT, S.MEMORY_LIMIT], S.MEMORY_LIMIT),
        ([S.MEMORY_LIMIT, S.TIMEOUT], S.TIMEOUT),
        ([S.TIMEOUT, S.REJECTED], S.REJECTED),
        ([S.REJECTED, S.SYSTEM_ERROR], S.SYSTEM_ERROR),
    ],
)
def test_worst_status_wins(statuses: list[Status], expected: Status) -> None:
    assert worst(statuses) is expected


def test_every_status_has_a_distinct_severity_and_a_label() -> None:
    severities = [s.severity for s in Status]
    assert len(set(severities)) == len(severities)
    assert all(s.label for s in Status)


def test_only_system_errors_are_ours() -> None:
    assert [s for s in Status if not s.earned] == [Status.SYSTEM_ERROR]


def test_status_serialises_as_its_value() -> None:
    assert str(Status.TOO_SLOW) == "too_slow"


R = Outcome
DIED = (S.TIMEOUT, "time limit: your code used more than 3 s of CPU time while a call")


@pytest.mark.parametrize(
    ("death", "import_error", "implied", "outcomes", "expected"),
    [
        (None, None, [], [R.PASSED, R.PASSED], (S.PASSED, "")),
        (None, None, [], [], (S.PASSED, "")),
        (None, None, [], [R.PASSED, R.SKIPPED], (S.PASSED, "")),
        (None, None, [], [R.PASSED, R.TOO_SLOW], (S.TOO_SLOW, "")),
        (None, None, [], [R.TOO_SLOW, R.FAILED], (S.FAILED, "")),
        (None, None, [], [R.ERROR], (S.FAILED, "")),
        (DIED, None, [], [R.PASSED, R.ERROR], DIED),
        (None, "NameError", [], [R.ERROR], (S.RUNTIME_ERROR, "your module failed to import: NameError")),
        # the import's failure explains more than a death that followed it
        (DIED, "NameError", [], [R.ERROR], (S.TIMEOUT, "your module failed to import: NameError")),
        (None, None, [(S.MEMORY_LIMIT, "memory limit")], [R.ERROR], (S.MEMORY_LIMIT, "memory limit")),
        # a death's words come before what a failure implied
        (
            (S.OUTPUT_LIMIT, "printed too much"),
            None,
            [(S.MEMORY_LIMIT, "memory")],
            [],
            (S.MEMORY_LIMIT, "printed too much"),
        ),
        (None, None, [(S.PASSED, "nothing")], [R.TOO_SLOW], (S.TOO_SLOW, "nothing")),
    ],
)
def test_the_verdict_is_a_function_of_what_was_observed(
    death: tuple[Status, str] | None,
    import_error: str | None,
    implied: list[tuple[Status, str]],
    outcomes: list[Outcome],
    expected: tuple[Status, str],
) -> None:
    assert judge(death, import_error, implied, outcomes) == expected


def _test(name: str, outcome: Outcome, weight: float = 1.0) -> TestResult:
    return TestResult(name=name, visibility="hidden", outcome=outcome, weight=weight)


PASS, FAIL = _test("test_a", R.PASSED, 2.0), _test("test_b", R.FAILED)
RAN = {"exit_code": 0, "tests": [PASS]}
ON_GPU_ONLY = TestResult(
    name="test_speed",
    visibility="hidden",
    outcome=R.SKIPPED,
    message="speed on a GPU is measured on GPU hosts only",
)


@pytest.mark.parametrize(
    ("results", "runner", "status", "words"),
    [
        (RAN, Runner(), S.PASSED, "passed all 1 tests"),
        # a check that cannot be measured here is not run, and the summary says so and why
        (
            {"exit_code": 0, "tests": [PASS, ON_GPU_ONLY]},
            Runner(),
            S.PASSED,
            "passed all 1 tests that ran; 1 not run here: speed on a GPU is measured on GPU hosts only",
        ),
        ({"exit_code": 1, "tests": [PASS, FAIL]}, Runner(), S.FAILED, "1 of 2 tests passed"),
        (RAN, Runner(death=DIED), S.TIMEOUT, "time limit: your code used more than 3 s"),
        # a run that broke, collected nothing or left a test without a result is ours, never a pass
        ({"exit_code": 2, "tests": [PASS]}, Runner(), S.SYSTEM_ERROR, "pytest exited with code 2"),
        ({"exit_code": 0, "tests": []}, Runner(), S.SYSTEM_ERROR, "could not run"),
        ({**RAN, "collect_errors": ["SyntaxError"]}, Runner(), S.SYSTEM_ERROR, "SyntaxError"),
        ({**RAN, "missing": ["test_c"]}, Runner(), S.SYSTEM_ERROR, "tests without a result: test_c"),
        ({**RAN, "system_error": "the reference raised"}, Runner(), S.SYSTEM_ERROR, "the reference raised"),
        # ... even beside a death the submission earned
        ({**RAN, "missing": ["test_c"]}, Runner(death=DIED), S.SYSTEM_ERROR, "test_c"),
    ],
)
def test_the_whole_verdict_is_a_function_of_results_and_runner(
    results: dict[str, Any], runner: Runner, status: Status, words: str
) -> None:
    provenance = Provenance(exercise="e", exercise_version="1", submission_sha256="0")
    verdict = verdict_of(Results(**results), runner, provenance, {"cpu_seconds": 1}, Timings())
    assert verdict.status is status
    assert words in f"{verdict.summary} {verdict.message}"
    if status is not S.SYSTEM_ERROR:
        passed = sum(t.weight for t in verdict.tests if t.outcome is R.PASSED)
        assert (verdict.score, verdict.max_score) == (passed, sum(t.weight for t in verdict.tests))
        assert verdict.provenance is provenance and verdict.limits == {"cpu_seconds": 1}


def test_what_the_runner_printed_is_carried_as_it_left_it() -> None:
    runner = Runner(output="hi\n", output_bytes=3, output_withheld=True, output_truncated=False)
    provenance = Provenance(exercise="e", exercise_version="1", submission_sha256="0")
    verdict = verdict_of(Results(**RAN), runner, provenance, {}, Timings())
    assert (verdict.output, verdict.output_bytes, verdict.output_withheld) == ("hi\n", 3, True)
