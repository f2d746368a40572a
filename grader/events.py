"""Progress: what one grading (or one validation) reports while it runs, and the lifecycle of a
submission. One event type, serialised in one place (`Event.to_json` / `Event.from_json`), is
what the engine hands its sink, what a worker publishes on Redis, what the web streams to the
browser and what `grader status --wait` prints."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class SubmissionState(StrEnum):
    """Where a submission stands in the queue."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    SYSTEM_ERROR = "system_error"

    @property
    def final(self) -> bool:
        return self in (SubmissionState.DONE, SubmissionState.SYSTEM_ERROR)

    @classmethod
    def is_final(cls, state: object) -> bool:
        """Whether `state` (a state's name, from a database row or a JSON answer) is final."""
        return state in (cls.DONE, cls.SYSTEM_ERROR)


class EventKind(StrEnum):
    QUEUED = "queued"  # waiting in the queue: `position` ahead of it
    RUNNING = "running"  # a worker took it: `attempt`
    STAGE = "stage"  # a step of the grading (`message`)
    TEST = "test"  # test `current` of `total`
    PERFORMANCE = "performance"  # a measurement's progress (`message`, pair `current` of `total`)
    CHECK = "check"  # one check of a validation: `subject`, `ok`, `got`
    DONE = "done"  # finished: `status` (a verdict's, or a validation's state)


@dataclass(frozen=True)
class Event:
    kind: EventKind
    message: str = ""
    current: int = 0
    total: int = 0
    attempt: int | None = None
    position: int | None = None
    status: str | None = None
    subject: str | None = None
    ok: bool | None = None
    got: str | None = None

    def to_dict(self, **ids: Any) -> dict[str, Any]:
        """The event as JSON-ready data, leaving out fields at their defaults; `ids` (the
        submission's or the package's) go first."""
        data: dict[str, Any] = dict(ids)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value != field.default or field.name == "kind":
                data[field.name] = str(value) if field.name == "kind" else value
        return data

    def to_json(self, **ids: Any) -> str:
        return json.dumps(self.to_dict(**ids))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event | None:
        """The event in `raw`, or None for anything that is not one (a stray or older message)."""
        try:
            data = json.loads(raw)
        except (ValueError, TypeError):
            return None
        return cls.from_dict(data) if isinstance(data, dict) else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event | None:
        try:
            kind = EventKind(data["kind"])
        except (ValueError, TypeError, KeyError):
            return None
        fields: dict[str, Any] = {}
        for name, value in data.items():
            if name not in _TYPES:
                continue  # the ids it was published with, or a field of a later version
            wanted = _TYPES[name]
            if isinstance(value, bool) and wanted is not bool or not isinstance(value, wanted):
                if value is None and name in _OPTIONAL:
                    continue
                return None
            fields[name] = value
        return cls(kind, **fields)

    def describe(self) -> str:
        """One line for a person watching."""
        if self.kind is EventKind.QUEUED:
            return f"queued, {self.position or 0} ahead"
        if self.kind is EventKind.RUNNING:
            return f"grading (attempt {self.attempt})"
        if self.kind is EventKind.TEST:
            return f"test {self.current} of {self.total}"
        if self.kind in (EventKind.STAGE, EventKind.PERFORMANCE):
            return self.message
        return ""


_TYPES: dict[str, type] = {"message": str, "current": int, "total": int, "attempt": int, "position": int}
_TYPES |= {"status": str, "subject": str, "ok": bool, "got": str}
_OPTIONAL = {"attempt", "position", "status", "subject", "ok", "got"}

EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default sink."""
