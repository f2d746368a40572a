"""Invariance checks: the same answer however the work is split (block sizes, chunking, order)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from grader.testing.asserts import GradingFailure
from grader.testing.compare import compare


def assert_invariant(
    fn: Callable[..., Any],
    args: Sequence[Any],
    variants: Mapping[str, Mapping[str, Any]],
    *,
    expected: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    what: str = "the output",
    hint: str = "",
) -> None:
    """Call `fn(*args, **kwargs)` for each labelled variant of the keyword arguments; every result
    must match `expected` (or, without it, the first variant's)."""
    results = {label: fn(*args, **dict(kwargs)) for label, kwargs in variants.items()}
    labels = list(results)
    baseline_label = "the expected value" if expected is not None else labels[0]
    baseline = expected if expected is not None else results[labels[0]]
    for label in labels if expected is not None else labels[1:]:
        mismatch = compare(results[label], baseline, rtol=rtol, atol=atol)
        if mismatch is not None:
            raise GradingFailure(
                f"{what} with {label} differs from {baseline_label}: {mismatch.kind}",
                detail=mismatch.explained(),
                hint=hint,
            )
