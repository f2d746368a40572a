"""Progress events: one type, one serialisation, read back as it was written or not at all."""

from __future__ import annotations

import pytest

from grader.events import Event, EventKind, SubmissionState


@pytest.mark.parametrize(
    "event",
    [
        Event(EventKind.QUEUED, position=0, attempt=1),
        Event(EventKind.RUNNING, attempt=2),
        Event(EventKind.TEST, "running test_causal", 3, 7),
        Event(EventKind.PERFORMANCE, "speed: pair 4", 4, 61),
        Event(EventKind.CHECK, subject="wrong/loop", ok=True, got="too_slow"),
        Event(EventKind.DONE, status="passed"),
    ],
)
def test_an_event_reads_back_as_written(event: Event) -> None:
    raw = event.to_json(submission=12)
    assert Event.from_json(raw) == event
    assert Event.from_dict(event.to_dict()) == event


def test_defaults_stay_out_of_the_message_and_ids_come_first() -> None:
    assert Event(EventKind.QUEUED, position=0).to_dict(submission=5) == {
        "submission": 5,
        "kind": "queued",
        "position": 0,
    }


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"message": "no kind"}',
        '{"kind": "bogus"}',
        '{"kind": "test", "current": "3"}',
        '{"kind": "test", "current": true}',
        '{"kind": "check", "ok": "yes"}',
        '{"kind": "stage", "message": 5}',
    ],
)
def test_anything_else_is_not_an_event(raw: str) -> None:
    assert Event.from_json(raw) is None


def test_unknown_fields_are_left_out_and_a_null_optional_is_its_default() -> None:
    event = Event.from_json('{"kind": "done", "status": null, "package": 4, "later": [1]}')
    assert event == Event(EventKind.DONE)


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (Event(EventKind.QUEUED, position=2), "queued, 2 ahead"),
        (Event(EventKind.RUNNING, attempt=1), "grading (attempt 1)"),
        (Event(EventKind.TEST, current=1, total=4), "test 1 of 4"),
        (Event(EventKind.STAGE, "importing your module"), "importing your module"),
        (Event(EventKind.DONE, status="passed"), ""),
    ],
)
def test_each_kind_reads_as_one_line(event: Event, words: str) -> None:
    assert event.describe() == words


@pytest.mark.parametrize(
    ("state", "final"),
    [
        ("queued", False),
        ("running", False),
        ("done", True),
        ("system_error", True),
        (None, False),
        ("passed", False),
    ],
)
def test_final_states(state: object, final: bool) -> None:
    assert SubmissionState.is_final(state) is final
