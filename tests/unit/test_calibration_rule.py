"""Where calibration puts a speed check's threshold: the rule as a table of cases, and how the
result reads in a terminal."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from grader.calibrate import MIN_GAP, ROOM, Calibration, Measured, _Enough, propose, round_threshold
from grader.cli import render
from grader.spec import PerformanceSpec

SPEC = PerformanceSpec(metric="time", threshold=2.5, tolerance=0.1)


def reference(high: float = 1.05, *, call_s: float = 4e-4, noise: float = 0.05, pairs: int = 61) -> Measured:
    return Measured("reference", 1.0, 0.95, high, pairs, call_s, noise, "test_speed")


def slow(low: float, subject: str = "wrong/loop", pairs: int = 61) -> Measured:
    return Measured(subject, low * 1.1, low, low * 1.2, pairs, 4e-4, 0.05, "test_speed")


def test_the_limit_sits_at_the_geometric_mean_when_the_slow_variant_is_near() -> None:
    result = propose("speed", SPEC, 61, reference(1.0), [slow(4.0)])
    assert result.proposed == round_threshold(2.0 / 1.1) == 1.8
    assert result.proposed_limit == pytest.approx(1.98)
    assert result.gap == pytest.approx(4.0)
    assert "proposed threshold 1.8" in result.summary


def test_the_limit_is_at_most_room_times_the_reference_however_slow_the_variant() -> None:
    result = propose("speed", SPEC, 61, reference(1.05), [slow(400.0)])
    assert result.proposed_limit is not None
    assert result.proposed_limit == pytest.approx(round_threshold(1.05 * ROOM / 1.1) * 1.1)
    assert 1.05 < result.proposed_limit < 400.0


def test_the_fastest_slow_variant_decides() -> None:
    result = propose("speed", SPEC, 61, reference(1.0), [slow(50.0, "wrong/a"), slow(3.0, "wrong/b")])
    assert result.proposed_limit is not None and result.proposed_limit < 3.0
    assert "wrong/b's lower bound" in result.summary


@pytest.mark.parametrize(
    ("threshold", "separates", "words"),
    [
        pytest.param(2.5, True, "separates them: 2.3x above", id="between"),
        pytest.param(
            1.0, False, "the reference's own upper bound 1.20x reaches it", id="under-the-reference"
        ),
        pytest.param(20.0, False, "wrong/loop's lower bound 12.00x is under it", id="over-the-slow-variant"),
    ],
)
def test_says_whether_the_current_threshold_separates_them(
    threshold: float, separates: bool, words: str
) -> None:
    spec = PerformanceSpec(metric="time", threshold=threshold, tolerance=0.1)
    result = propose("speed", spec, 61, reference(1.2), [slow(12.0)])
    assert result.current_separates is separates
    assert words in result.current
    assert result.proposed is not None  # whatever the current threshold


def test_the_current_threshold_under_the_reference_is_named() -> None:
    result = propose(
        "speed", PerformanceSpec(metric="time", threshold=1.0, tolerance=0.1), 61, reference(1.2), []
    )
    assert "does not clear the reference's upper bound 1.20x" in result.current


@pytest.mark.parametrize(
    ("ref", "variant", "cause"),
    [
        pytest.param(reference(1.05, call_s=2e-5), slow(1.1), "too short to time", id="tiny-calls"),
        pytest.param(reference(1.05), slow(1.1, pairs=7), "only 7 of 61 pairs fit", id="long-calls"),
        pytest.param(reference(1.4, noise=0.6), slow(1.6), "the machine is busy", id="noisy"),
        pytest.param(reference(1.05), slow(1.1), "the timed input is probably too small", id="small-input"),
        pytest.param(reference(1.0), slow(1.6), "only a little slower on this input", id="close"),
    ],
)
def test_no_threshold_when_the_slow_variant_is_within_the_gap(
    ref: Measured, variant: Measured, cause: str
) -> None:
    result = propose("speed", SPEC, 61, ref, [variant])
    assert result.proposed is None and result.gap is not None and result.gap < MIN_GAP
    assert result.summary.startswith("no threshold separates them: wrong/loop is within")
    assert cause in result.summary


def test_without_a_slow_variant_nothing_is_proposed() -> None:
    result = propose("speed", SPEC, 61, reference(), [], ["wrong/materialize"])
    assert result.proposed is None and result.left_out == ["wrong/materialize"]
    assert "no wrong/ variant is meant to be slow on speed" in result.summary
    calibration = Calibration("toy", "v", "bwrap", [result])
    assert calibration.without_slow_variants and not calibration.unseparated and not calibration.unmeasured


def test_an_unmeasured_variant_or_reference_is_said() -> None:
    broken = Measured("wrong/loop", error="not measured: failed (test_shapes: the output differs)")
    result = propose("speed", SPEC, 61, reference(), [broken])
    assert result.proposed is None and "no slow variant could be measured" in result.summary
    assert "test_shapes" in result.summary
    none = propose("speed", SPEC, 61, Measured("reference", error="its grading did not measure speed"), [])
    assert none.proposed is None and "the reference could not be measured" in none.summary
    assert Calibration("toy", "v", "bwrap", [none]).unmeasured == ["speed"]


def test_measuring_stops_early_only_when_more_pairs_cannot_matter() -> None:
    far = _Enough(budget_s=1e6, far=math.log(9.0))
    assert not far([math.log(20.0)] * 2)  # too few
    assert far([math.log(20.0)] * 3)  # three pairs all far past: as a grading's early rule
    assert not far([math.log(20.0), math.log(20.0), math.log(2.0)])
    assert not _Enough(budget_s=1e6)([0.0] * 50)  # the reference: all its pairs
    assert _Enough(budget_s=0.0)([0.0] * 5)  # out of time, after five
    assert not _Enough(budget_s=0.0)([0.0] * 4)


def test_the_table_shows_each_subject_the_proposal_and_the_rule() -> None:
    result = propose("speed", SPEC, 61, reference(1.02), [slow(12.0)], ["wrong/materialize"])
    console = Console(record=True, width=200)
    render.calibration(console, Calibration("causal-masking", "v", "bwrap", [result]))
    text = console.export_text()
    assert "causal-masking: speed" in text and "threshold 2.5 (limit 2.75x)" in text
    assert "reference vs itself" in text and "0.95-1.02x" in text
    assert "wrong/loop" in text and "12.00-14.40x" in text
    assert "wrong/materialize" in text and "left out" in text
    assert "proposed threshold 2.8" in text and "separates them" in text
    assert "rule: limit = threshold x (1 + tolerance) at the geometric mean" in text
