"""Verdict precedence as a table."""

from __future__ import annotations

import pytest

from grader.verdict import Status, worst

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
