"""`grader exercise calibrate`: where a speed check's threshold belongs, measured on this machine.

For each time check of an exercise (metric "time", a ratio: no `sizes`), the reference is graded
against itself, and every wrong/ variant meant to be slow on that check (`# expect: too_slow`,
and a `caught-by` naming the test that measures the check, or no `caught-by` at all) against the
reference. Each grading measures as it always does (`perf.measure` and
`grader.measurement.protocol.time_ratio`: paired blocks, the median of the per-pair log ratios
and its bootstrap 95% interval), except that it does not stop once the interval is on one side of
the current limit: the answer must not depend on the threshold it is asked to place. It measures
`max_pairs` pairs (or `pairs`), fewer when the check's `budget_seconds` ran out after 5, or when a
slow variant is already so far from the reference that more pairs could not move the proposal.

The rule (`RULE`, `propose`): the two bounds that matter are the upper bound of the reference's
ratio to itself and the lower bound of the fastest slow variant's. They must be at least
`MIN_GAP` apart. The proposed limit (threshold x (1 + tolerance)) is their geometric mean, so
that both have the same margin, but at most `ROOM` times the reference's bound: beyond that, more
room only lets slower solutions pass. The threshold is rounded to two significant digits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from grader.catalog import Exercise, WrongVariant
from grader.engine import grade
from grader.events import EventSink, ignore
from grader.measurement import stats
from grader.measurement.protocol import FixedPairs
from grader.spec import PerformanceSpec
from grader.validate import TINY_CALL_S, VALIDATION_SEED
from grader.verdict import PerfResult, Status, Verdict, function_of
from sandbox import Sandbox

MIN_GAP = 2.0  # the reference's upper bound and the slow variant's lower bound, at least this apart
ROOM = 3.0  # the proposed limit is at most this many times the reference's upper bound
MIN_PAIRS = stats.CLEAR_CUT_PAIRS  # pairs before a measurement may stop short of its count
RULE = (
    f"limit = threshold x (1 + tolerance) at the geometric mean of the reference's upper bound and "
    f"the fastest slow variant's lower bound (the same margin on both sides), at most {ROOM:g}x the "
    f"reference's upper bound (more room only lets slower solutions pass); the threshold is rounded "
    f"to 2 significant digits, and the two bounds must be at least {MIN_GAP:g}x apart"
)

OnSubject = Callable[[str, int, int], None]  # what is measured now: its subject, k of n


class NotCalibratable(Exception):
    """The exercise has nothing to calibrate."""


@dataclass(frozen=True)
class Measured:
    """One subject's ratio to the reference on one check."""

    subject: str  # "reference" (against itself) | "wrong/<name>"
    ratio: float | None = None  # the median ratio
    low: float | None = None  # its bootstrap 95% interval
    high: float | None = None
    pairs: int = 0
    call_s: float = 0.0  # the reference's CPU seconds per timed call
    noise: float = 0.0  # the reference's block times: interquartile range over median
    test: str = ""  # the test that measured it
    error: str = ""  # why there is no figure

    @property
    def measured(self) -> bool:
        return self.ratio is not None and self.low is not None and self.high is not None


@dataclass(frozen=True)
class CheckCalibration:
    """One time check: what was measured, the proposed threshold (None when no threshold
    separates the reference from the slow variants) and the current one."""

    check: str
    threshold: float  # the current one, from exercise.toml
    tolerance: float
    limit: float  # threshold x (1 + tolerance)
    pairs: int  # asked of each measurement
    budget_seconds: float
    reference: Measured
    slow: list[Measured] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # too_slow variants meant for other checks
    proposed: float | None = None
    proposed_limit: float | None = None
    gap: float | None = None  # the fastest slow variant's lower bound / the reference's upper bound
    current_separates: bool | None = None  # None: nothing to separate
    summary: str = ""  # the proposal, or why there is none
    current: str = ""  # what the current threshold does


@dataclass(frozen=True)
class Calibration:
    exercise: str
    version: str
    sandbox: str
    checks: list[CheckCalibration]
    rule: str = RULE

    @property
    def unmeasured(self) -> list[str]:
        """Checks on which the reference itself could not be measured."""
        return [c.check for c in self.checks if not c.reference.measured]

    @property
    def without_slow_variants(self) -> bool:
        """No time check had a slow variant to separate from the reference."""
        return all(not c.slow for c in self.checks)

    @property
    def unseparated(self) -> list[str]:
        """Checks with slow variants that no threshold separates from the reference."""
        return [c.check for c in self.checks if c.slow and c.proposed is None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_checks(exercise: Exercise) -> dict[str, PerformanceSpec]:
    """The checks calibration is about: time ratios."""
    return {
        name: spec
        for name, spec in exercise.spec.performance.items()
        if spec.metric == "time" and not spec.scaling
    }


def slow_variants(exercise: Exercise) -> list[WrongVariant]:
    return [w for w in exercise.wrong if w.expect is Status.TOO_SLOW]


def calibrate(
    exercise: Exercise,
    backend: Sandbox,
    *,
    pairs: int | None = None,
    events: EventSink = ignore,
    on_subject: OnSubject | None = None,
) -> Calibration:
    """Measure the reference against itself and each slow variant against the reference, on every
    time check of `exercise`, and propose thresholds. Raises NotCalibratable when the exercise
    has no time check. `on_subject(subject, k, n)` is told what is measured next."""
    checks = time_checks(exercise)
    if not checks:
        raise NotCalibratable(
            f"{exercise.slug} has no time check to calibrate "
            '(a [performance.<name>] with metric = "time" and no sizes)'
        )
    variants = slow_variants(exercise)
    total = 1 + len(variants)
    asked = {name: pairs or spec.max_pairs for name, spec in checks.items()}
    if on_subject is not None:
        on_subject("reference", 1, total)
    fixed = {name: FixedPairs(asked[name], _Enough(spec.budget_seconds)) for name, spec in checks.items()}
    verdict = _grade(exercise, exercise.solution.read_bytes(), "solution.py", backend, fixed, events)
    reference = {name: _measured("reference", verdict, name) for name in checks}
    tests = {name: _tests_of(verdict, name) for name in checks}
    slow: dict[str, list[Measured]] = {name: [] for name in checks}
    left_out: dict[str, list[str]] = {name: [] for name in checks}
    for k, wrong in enumerate(variants, 2):
        subject = f"wrong/{wrong.name}"
        meant = [name for name in checks if _meant_for(wrong, tests[name])]
        for name in checks:
            if name not in meant:
                left_out[name].append(subject)
        ready = [name for name in meant if reference[name].measured]
        if not ready:
            continue
        if on_subject is not None:
            on_subject(subject, k, total)
        fixed = {
            name: FixedPairs(asked[name], _Enough(checks[name].budget_seconds, _far(reference[name])))
            for name in ready
        }
        verdict = _grade(exercise, wrong.path.read_bytes(), wrong.path.name, backend, fixed, events)
        for name in ready:
            slow[name].append(_measured(subject, verdict, name))
    return Calibration(
        exercise=exercise.slug,
        version=exercise.version,
        sandbox=backend.name,
        checks=[
            propose(name, spec, asked[name], reference[name], slow[name], left_out[name])
            for name, spec in checks.items()
        ],
    )


def _grade(
    exercise: Exercise,
    raw: bytes,
    filename: str,
    backend: Sandbox,
    fixed: dict[str, FixedPairs],
    events: EventSink,
) -> Verdict:
    return grade(
        exercise, raw, backend, events=events, filename=filename, seed=VALIDATION_SEED, calibration=fixed
    )


class _Enough:
    """When a calibration's measurement may stop short of its pairs: once every one of the first
    3 pairs is past `far` (a log ratio; the rule by which a grading stops early on a very slow
    submission), or after MIN_PAIRS once the check's budget has run out or the interval's lower
    bound is past `far`."""

    def __init__(self, budget_s: float, far: float | None = None) -> None:
        self.budget_s = budget_s
        self.far = far
        self.started: float | None = None

    def __call__(self, logs: Sequence[float]) -> bool:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if self.far is not None and len(logs) >= stats.EARLY_PAIRS and min(logs) >= self.far:
            return True
        if len(logs) < MIN_PAIRS:
            return False
        if now - self.started >= self.budget_s:
            return True
        return self.far is not None and stats.bootstrap_median(logs).low >= self.far


def _far(reference: Measured) -> float | None:
    """Past this log ratio, a slow variant's bound no longer moves the proposal: the limit is then
    ROOM times the reference's bound whatever the variant measures, with ROOM to spare above it."""
    if reference.high is None:
        return None
    return math.log(reference.high * ROOM * ROOM)


def _tests_of(verdict: Verdict, check: str) -> set[str]:
    """The tests that measured `check`, by their names and their functions' names."""
    names = {p.test for p in verdict.performance if p.name == check and p.test}
    return names | {function_of(n) for n in names}


def _meant_for(wrong: WrongVariant, tests: set[str]) -> bool:
    """A slow variant counts against a check when its `caught-by` names a test that measures the
    check, or when it names no test at all."""
    return not wrong.caught_by or bool(set(wrong.caught_by) & tests)


def _measured(subject: str, verdict: Verdict, check: str) -> Measured:
    found = [p for p in verdict.performance if p.name == check and p.ci_low is not None]
    if not found:
        return Measured(subject, error=_unmeasured(verdict, check))
    # several tests measuring one check: the least favourable to a separation
    if subject == "reference":
        pick = max(found, key=lambda p: p.ci_high or 0.0)
    else:
        pick = min(found, key=lambda p: p.ci_low or 0.0)
    return Measured(
        subject,
        ratio=pick.ratio,
        low=pick.ci_low,
        high=pick.ci_high,
        pairs=pick.pairs,
        call_s=pick.reference_value,
        noise=_noise(pick),
        test=pick.test,
    )


def _noise(perf: PerfResult) -> float:
    times = [sample[1] for sample in perf.samples if len(sample) == 2]
    return stats.dispersion(times) if times else 0.0


def _unmeasured(verdict: Verdict, check: str) -> str:
    if verdict.status in (Status.PASSED, Status.TOO_SLOW):
        return f"its grading did not measure {check}"
    failing = verdict.failing_tests()
    if failing:
        return f"not measured: {verdict.status.value} ({failing[0].name}: {failing[0].message})"[:300]
    return f"not measured: {verdict.status.value} ({verdict.message or verdict.summary})"[:300]


def round_threshold(value: float) -> float:
    """Two significant digits."""
    return float(f"{value:.2g}")


def propose(
    check: str,
    spec: PerformanceSpec,
    pairs: int,
    reference: Measured,
    slow: list[Measured],
    left_out: list[str] | None = None,
) -> CheckCalibration:
    """The proposed threshold for `check` (see RULE), or why there is none, and what the current
    threshold does. Pure."""
    base = CheckCalibration(
        check=check,
        threshold=spec.threshold,
        tolerance=spec.tolerance,
        limit=spec.limit,
        pairs=pairs,
        budget_seconds=spec.budget_seconds,
        reference=reference,
        slow=list(slow),
        left_out=list(left_out or []),
    )
    if not reference.measured or reference.high is None:
        return _with(base, f"no threshold: the reference could not be measured ({reference.error})")
    ref_high = reference.high
    if not slow:
        where = f"the current threshold (limit {spec.limit:.2f}x)"
        current = (
            f"{where} is {spec.limit / ref_high:.1f}x above the reference's upper bound"
            if spec.limit > ref_high
            else f"{where} does not clear the reference's upper bound {ref_high:.2f}x"
        )
        return _with(
            base,
            f"no threshold to propose: no wrong/ variant is meant to be slow on {check} "
            f"(add one with '# expect: too_slow' and a caught-by naming the test that measures {check})",
            current=current,
        )
    measured = [m for m in slow if m.measured and m.low is not None]
    if not measured:
        why = "; ".join(f"{m.subject}: {m.error}" for m in slow)
        return _with(base, f"no threshold: no slow variant could be measured ({why})")
    fastest = min(measured, key=lambda m: m.low or 0.0)
    low = fastest.low or 0.0
    gap = low / ref_high
    current = _current(spec.limit, ref_high, fastest.subject, low)
    separates = ref_high < spec.limit < low
    if gap < MIN_GAP:
        return _with(
            base,
            f"no threshold separates them: {fastest.subject} is within {gap:.2f}x of the reference "
            f"(its lower bound {low:.2f}x, the reference's upper bound {ref_high:.2f}x; "
            f"at least {MIN_GAP:g}x is needed): " + _causes(spec, reference, fastest, gap, pairs),
            current=current,
            gap=gap,
            separates=separates,
        )
    limit = ref_high * min(math.sqrt(gap), ROOM)
    threshold = max(1.0, round_threshold(limit / (1 + spec.tolerance)))
    limit = threshold * (1 + spec.tolerance)
    summary = (
        f"proposed threshold {threshold:g} (limit {limit:.2f}x with tolerance {spec.tolerance:g}): "
        f"{limit / ref_high:.1f}x above the reference's upper bound {ref_high:.2f}x, "
        f"{low / limit:.1f}x below {fastest.subject}'s lower bound {low:.2f}x"
    )
    return replace(
        base,
        proposed=threshold,
        proposed_limit=limit,
        gap=gap,
        current_separates=separates,
        summary=summary,
        current=current,
    )


def _with(
    base: CheckCalibration,
    summary: str,
    *,
    current: str = "",
    gap: float | None = None,
    separates: bool | None = None,
) -> CheckCalibration:
    return replace(base, summary=summary, current=current, gap=gap, current_separates=separates)


def _current(limit: float, ref_high: float, subject: str, low: float) -> str:
    where = f"the current threshold (limit {limit:.2f}x)"
    if ref_high < limit < low:
        return (
            f"{where} separates them: {limit / ref_high:.1f}x above the reference's upper bound, "
            f"{low / limit:.1f}x below {subject}'s lower bound"
        )
    if limit <= ref_high:
        return (
            f"{where} does not separate them: the reference's own upper bound {ref_high:.2f}x reaches it "
            "(correct solutions as fast as the reference could fail)"
        )
    return (
        f"{where} does not separate them: {subject}'s lower bound {low:.2f}x is under it "
        "(the slow variant could pass)"
    )


def _causes(spec: PerformanceSpec, reference: Measured, fastest: Measured, gap: float, pairs: int) -> str:
    """Why a slow variant may measure close to the reference, most likely first."""
    causes = []
    if reference.call_s and reference.call_s < TINY_CALL_S:
        causes.append(
            f"each timed call takes the reference {reference.call_s * 1e3:.3f} ms, too short to time: the "
            "exchange's fixed costs squeeze every ratio towards 1; give the calls more work"
        )
    if fastest.pairs < pairs or reference.pairs < pairs:
        causes.append(
            f"only {min(fastest.pairs, reference.pairs)} of {pairs} pairs fit in the check's "
            f"budget_seconds ({spec.budget_seconds:g} s): the calls are too long; time a smaller input "
            "or raise budget_seconds"
        )
    if reference.noise > stats.MAX_DISPERSION:
        causes.append(
            f"the reference's own block times varied by {reference.noise:.0%} (interquartile range over "
            "median): the machine is busy; calibrate again when it is quiet"
        )
    if gap < 1.2:
        causes.append(
            f"the timed input is probably too small for {fastest.subject}'s extra work to show: "
            "time a larger input"
        )
    elif not causes:
        causes.append(
            f"{fastest.subject} is only a little slower on this input: time a larger input, where its extra "
            "work weighs more"
        )
    return "; ".join(causes)
