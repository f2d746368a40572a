"""Verdict precedence as a table."""

from __future__ import annotations

import pytest

from grader.engine import judge
from grader.verdict import Outcome, Status, worst

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
