"""Shrinking: when a check fails on generated inputs, find the smallest failing case and report it.

A test describes its generated case by integer sizes (and a seed) and hands a `check(sizes, seed)`
that raises on failure. On a failure, `shrink` tries smaller sizes (each one's minimum, half, one
less) and a few other seeds, keeps any case that still fails, and repeats until nothing smaller
fails; then it tries lower seeds for that case. The failure is re-raised from the smallest case,
with both cases named: a learner can reproduce the small one by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest

from grader.remote import RemoteError
from grader.testing.asserts import GradingFailure

Check = Callable[[dict[str, int], int], None]
FAILURES = (GradingFailure, RemoteError, AssertionError, pytest.fail.Exception)


@dataclass(frozen=True)
class Case:
    sizes: dict[str, int]
    seed: int

    def describe(self) -> str:
        shape = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"{shape} (seed {self.seed})" if shape else f"seed {self.seed}"


def shrink(
    check: Check,
    sizes: Mapping[str, int],
    *,
    seed: int,
    minimum: Mapping[str, int] | None = None,
    seeds: int = 4,
    budget: int = 80,
) -> None:
    """Run `check(sizes, seed)`; if it fails, raise the failure of the smallest failing case."""
    start = Case(dict(sizes), seed)
    first = _failure(check, start)
    if first is None:
        return
    floor = {k: (minimum or {}).get(k, 1) for k in sizes}
    best, failure, calls = start, first, 0

    def attempt(case: Case) -> bool:
        nonlocal best, failure, calls
        if calls >= budget:
            return False
        calls += 1
        found = _failure(check, case)
        if found is None:
            return False
        best, failure = case, found
        return True

    improved = True
    while improved and calls < budget:
        improved = False
        for name in best.sizes:
            for smaller in _candidates(best.sizes[name], floor[name]):
                trial = {**best.sizes, name: smaller}
                if any(attempt(Case(trial, s)) for s in dict.fromkeys([best.seed, *range(seeds)])):
                    improved = True
                    break
    for s in range(min(best.seed, seeds)):  # a smaller seed is easier to reproduce by hand
        if calls >= budget or attempt(Case(best.sizes, s)):
            break
    raise _reported(failure, best, start)


def _candidates(value: int, floor: int) -> list[int]:
    return [c for c in dict.fromkeys([floor, value // 2, value - 1]) if floor <= c < value]


def _failure(check: Check, case: Case) -> BaseException | None:
    try:
        check(dict(case.sizes), case.seed)
    except FAILURES as exc:
        return exc
    return None


def _reported(failure: BaseException, smallest: Case, start: Case) -> BaseException:
    where = f"smallest failing case: {smallest.describe()}"
    if smallest != start:
        where += f"; first failed at {start.describe()}"
    if isinstance(failure, GradingFailure):
        return GradingFailure(f"{where}: {failure.message}", detail=failure.detail, hint=failure.hint)
    if isinstance(failure, RemoteError):
        failure.shrunk_case = where  # type: ignore[attr-defined]  # read by the harness's feedback
        return failure
    if isinstance(failure, pytest.fail.Exception):  # the test author's own words
        return GradingFailure(f"{where}: {failure}" if str(failure) else where)
    # a bare assert's text shows the values it compared: a detail
    return GradingFailure(f"{where}: a check did not hold", detail=str(failure))
