"""The statistics behind performance verdicts: pure functions over per-pair log ratios.

Each pair is one timed block of the submission and one of the reference, run back to back in a
random order on the same fresh inputs, so slow drifts of the machine cancel within a pair. The
verdict uses the median log ratio with a bootstrap confidence interval:

- pass when the interval's upper bound is under the limit (threshold x (1 + tolerance)),
- fail when its lower bound is over the limit,
- otherwise measure more pairs, and at the last checkpoint decide on the median alone.

A clear-cut rule ends early when every one of the first 5 pairs is more than twice over (or
under half) the limit, or every one of the first 3 is more than three times over (a very slow
submission should not cost minutes of measurement: beside a CPU hog, with two gradings at once,
the slowest single pair read at most 1.8x over its grading's median in
`benchmarks/stability.py`, so three pairs each 3x over the limit are not a submission at or
under it). When the reference's own times are too dispersed (IQR / median above 0.25) and the
interval could not decide by the last checkpoint, the machine is too noisy to judge a result on
its median alone: the result is inconclusive, never a failure, and is measured again after a
pause. Far from the limit (a median more than twice over or under it) that noise cannot change
the answer, and the decision stands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
CLEAR_CUT_PAIRS = 5
CLEAR_CUT_FACTOR = 2.0
EARLY_PAIRS = 3  # three times past the limit needs only this many pairs
EARLY_FACTOR = 3.0
MAX_DISPERSION = 0.25


@dataclass(frozen=True)
class Estimate:
    median: float  # of the log ratios
    low: float
    high: float

    @property
    def ratio(self) -> float:
        return math.exp(self.median)

    @property
    def ratio_low(self) -> float:
        return math.exp(self.low)

    @property
    def ratio_high(self) -> float:
        return math.exp(self.high)


@dataclass(frozen=True)
class Decision:
    state: str  # "pass" | "fail" | "undecided"
    by: str  # "ci" | "median" | "clear-cut" | ""
    estimate: Estimate


def bootstrap_median(
    values: Sequence[float], *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
) -> Estimate:
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no samples")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(resamples, data.size))
    medians = np.median(data[picks], axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(medians, [alpha, 1 - alpha])
    return Estimate(median=float(np.median(data)), low=float(low), high=float(high))


def decide(log_ratios: Sequence[float], limit: float, *, final: bool, seed: int = 0) -> Decision:
    """Judge the log ratios against `limit` (a ratio); see the module's docstring."""
    estimate = bootstrap_median(log_ratios, seed=seed)
    bound = math.log(limit)
    values = np.asarray(log_ratios)
    if values.size >= EARLY_PAIRS and np.all(values > bound + math.log(EARLY_FACTOR)):
        return Decision("fail", "clear-cut", estimate)
    if values.size >= CLEAR_CUT_PAIRS:
        if np.all(values > bound + math.log(CLEAR_CUT_FACTOR)):
            return Decision("fail", "clear-cut", estimate)
        if np.all(values < bound - math.log(CLEAR_CUT_FACTOR)):
            return Decision("pass", "clear-cut", estimate)
    if estimate.high < bound:
        return Decision("pass", "ci", estimate)
    if estimate.low > bound:
        return Decision("fail", "ci", estimate)
    if final:
        return Decision("pass" if estimate.median <= bound else "fail", "median", estimate)
    return Decision("undecided", "", estimate)


def dispersion(values: Sequence[float]) -> float:
    """Interquartile range over median."""
    data = np.asarray(values, dtype=np.float64)
    median = float(np.median(data))
    if median <= 0:
        return math.inf
    q1, q3 = np.quantile(data, [0.25, 0.75])
    return float(q3 - q1) / median


def too_noisy(reference_times: Sequence[float], limit: float = MAX_DISPERSION) -> bool:
    return dispersion(reference_times) > limit


def inconclusive(decision: Decision, limit: float, reference_times: Sequence[float]) -> bool:
    """Whether a noisy reference makes this decision unreliable (see the module's docstring).
    A decision by the interval or a clear cut stands however noisy the machine: the interval is
    computed from the paired ratios themselves, so it already carries their noise."""
    if decision.by != "median":
        return False
    far = abs(decision.estimate.median - math.log(limit)) > math.log(CLEAR_CUT_FACTOR)
    return not far and too_noisy(reference_times)


def checkpoints(min_pairs: int, max_pairs: int) -> list[int]:
    """Pair counts at which the interval is examined: min, then doubling, up to max."""
    points, n = [], min_pairs
    while n < max_pairs:
        points.append(n)
        n = 2 * n - 1
    points.append(max_pairs)
    return points
