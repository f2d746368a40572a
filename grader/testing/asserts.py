"""Assertions for test authors. Their messages are written for the learner.

A GradingFailure carries a `message` that is the same whatever the submission returned (the
author's words and our fixed comparison vocabulary: safe in a hidden test) and a `detail` built
from what it returned (counts, shapes, indices, values); the harness shows the detail only in
public tests, or in hidden tests whose author marked them `@pytest.mark.feedback("full")`.
Never put a value computed from the submission's output into `message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grader.testing.compare import compare


class GradingFailure(AssertionError):
    def __init__(self, message: str, *, detail: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint


def expect(condition: object, message: str, *, detail: str = "", hint: str = "") -> None:
    """Fail with `message` (and `hint`) unless `condition` holds."""
    if not condition:
        raise GradingFailure(message, detail=detail, hint=hint)


def assert_close(
    actual: Any,
    expected: Any,
    *,
    what: str = "the output",
    rtol: float | None = None,
    atol: float | None = None,
    equal_nan: bool = False,
    hint: str = "",
    misconceptions: Mapping[str, Any] | None = None,
) -> None:
    """Check `actual` against `expected`: tensors and arrays by shape, dtype and value (with the
    dtype's default tolerance unless given), containers item by item, everything else exactly.

    `misconceptions` maps a likely mistake ("biased std?") to the output that mistake produces;
    when the submission's output matches one, the failure names it as the hint.
    """
    mismatch = compare(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if mismatch is None:
        return
    for label, wrong in (misconceptions or {}).items():
        try:
            if compare(actual, wrong, rtol=rtol, atol=atol, equal_nan=equal_nan) is None:
                hint = label
                break
        except TypeError:
            continue
    raise GradingFailure(mismatch.describe(what), detail=mismatch.explained(), hint=hint)
