"""Progress events of one grading, for a terminal, a log, or (later) a browser."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    kind: str  # "stage" | "test" | "performance" | "done"
    message: str
    current: int = 0
    total: int = 0


EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default sink."""
