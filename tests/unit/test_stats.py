"""Performance decisions as tables of cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grader.measurement import stats


def logs(*ratios: float) -> list[float]:
    return [math.log(r) for r in ratios]


def around(center: float, spread: float, n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.log(center) + rng.normal(0, spread, n))


@pytest.mark.parametrize(
    ("samples", "limit", "final", "state", "by"),
    [
        pytest.param(logs(*[20.0] * 5), 3.3, False, "fail", "clear-cut", id="far-over-fails-early"),
        pytest.param(logs(*[1.0] * 5), 3.3, False, "pass", "clear-cut", id="far-under-passes-early"),
        pytest.param(logs(*[20.0] * 4, 1.0), 3.3, False, "undecided", "", id="one-outlier-blocks-clear-cut"),
        pytest.param(
            logs(11.0, 12.0, 10.5), 3.3, False, "fail", "clear-cut", id="three-times-over-after-three"
        ),
        # the interval decides too, but the protocol only consults it at its checkpoints (21, 41, ...)
        pytest.param(logs(40.0, 50.0), 3.3, False, "fail", "ci", id="two-pairs-are-never-clear-cut"),
        pytest.param(logs(9.0, 9.0, 9.0), 3.3, False, "fail", "ci", id="merely-far-over-needs-five"),
        pytest.param(logs(20.0, 20.0, 9.0), 3.3, False, "fail", "ci", id="one-pair-under-3x-needs-five"),
        pytest.param(around(1.0, 0.05, 21), 3.3, False, "pass", "clear-cut", id="steady-pass"),
        pytest.param(around(2.0, 0.05, 21), 3.3, False, "pass", "ci", id="under-limit-ci"),
        pytest.param(around(4.0, 0.05, 21), 3.3, False, "fail", "ci", id="over-limit-ci"),
        pytest.param(around(3.3, 0.3, 21), 3.3, False, "undecided", "", id="straddling-undecided"),
        pytest.param(
            logs(3.0, 3.2, 3.6, 3.1, 3.5, 3.4, 3.2), 3.3, True, "pass", "median", id="final-median-pass"
        ),
        pytest.param(
            logs(3.4, 3.2, 3.6, 3.1, 3.5, 3.4, 3.35), 3.3, True, "fail", "median", id="final-median-fail"
        ),
    ],
)
def test_decide(samples: list[float], limit: float, final: bool, state: str, by: str) -> None:
    decision = stats.decide(samples, limit, final=final)
    assert (decision.state, decision.by) == (state, by)


def test_interval_contains_the_median_and_narrows_with_more_samples() -> None:
    few = stats.bootstrap_median(around(2.0, 0.2, 11))
    many = stats.bootstrap_median(around(2.0, 0.2, 81))
    for estimate in (few, many):
        assert estimate.low <= estimate.median <= estimate.high
    assert (many.high - many.low) < (few.high - few.low)
    assert many.ratio_low < 2.0 < many.ratio_high


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    data = around(1.5, 0.3, 21)
    assert stats.bootstrap_median(data, seed=3) == stats.bootstrap_median(data, seed=3)


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError):
        stats.bootstrap_median([])


@pytest.mark.parametrize(
    ("times", "noisy"),
    [
        ([10.0] * 21, False),
        ([10, 10.5, 9.8, 10.2, 10.1], False),
        ([10, 30, 5, 12, 40, 8], True),
        ([0.0, 0.0], True),
    ],
)
def test_noisy_reference(times: list[float], noisy: bool) -> None:
    assert stats.too_noisy(times) is noisy


@pytest.mark.parametrize(
    ("low", "high", "points"),
    [(21, 81, [21, 41, 81]), (11, 21, [11, 21]), (5, 5, [5]), (21, 100, [21, 41, 81, 100])],
)
def test_checkpoints(low: int, high: int, points: list[int]) -> None:
    assert stats.checkpoints(low, high) == points


@pytest.mark.parametrize(
    ("values", "exponent"),
    [([5, 5, 5], 0.0), ([4, 16, 64], 1.0), ([16, 256, 4096], 2.0), ([4.2, 15.5, 66.0], 1.0)],
)
def test_growth_exponent(values: list[float], exponent: float) -> None:
    from grader.measurement.protocol import growth_exponent

    assert growth_exponent([4, 16, 64], values) == pytest.approx(exponent, abs=0.05)


@pytest.mark.parametrize(
    ("median", "by", "noisy", "expected"),
    [
        (3.0, "median", True, True),  # near the limit, undecided, noisy reference: cannot judge
        (3.0, "median", False, False),
        (3.0, "ci", True, False),  # the interval already holds the noise
        (30.0, "median", True, False),  # far over: noise cannot flip it
        (1.0, "median", True, False),  # far under
        (3.0, "clear-cut", True, False),
    ],
)
def test_inconclusive_only_near_the_limit(median: float, by: str, noisy: bool, expected: bool) -> None:
    estimate = stats.Estimate(math.log(median), math.log(median) - 0.1, math.log(median) + 0.1)
    times = [10, 30, 5, 12, 40, 8] if noisy else [10.0] * 6
    assert stats.inconclusive(stats.Decision("fail", by, estimate), 3.3, times) is expected
