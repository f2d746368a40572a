"""`grader exercise calibrate` as an author runs it, on the fixture catalog: `toy-sum` has a speed
check and a slow variant meant for it (`wrong/loop`, hundreds of times slower) and one meant for
its memory checks (`wrong/materialize`); `guarded-sum` has a speed check and no slow variant.

Timings on a busy machine are noisy: only orderings with wide margins are asserted."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.integration.test_cli import FIXTURES, grader, said

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def test_the_proposed_threshold_lies_between_the_reference_and_the_slow_variant() -> None:
    done = grader("exercise", "calibrate", "toy-sum", "--json", "--pairs", "11")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)  # stdout holds the JSON alone
    assert set(result) == {"exercise", "version", "sandbox", "checks", "rule"}
    assert result["exercise"] == "toy-sum" and result["sandbox"] == "bwrap"
    assert "geometric mean" in result["rule"]
    [speed] = result["checks"]  # the memory, allocation and growth checks are not about time
    assert speed["check"] == "speed" and speed["threshold"] == 3.0 and speed["pairs"] == 11
    reference, slow = speed["reference"], speed["slow"]
    assert reference["subject"] == "reference" and reference["pairs"] == 11 and reference["error"] == ""
    assert reference["low"] <= reference["ratio"] <= reference["high"]
    assert [s["subject"] for s in slow] == ["wrong/loop"]
    assert speed["left_out"] == ["wrong/materialize"]  # caught by the memory checks' tests
    loop = slow[0]
    assert 3 <= loop["pairs"] <= 11 and loop["low"] <= loop["ratio"] <= loop["high"]
    # the loop is hundreds of times slower; the reference against itself near 1
    assert reference["high"] < 2.0 and loop["low"] > 20.0
    assert reference["high"] < speed["proposed_limit"] < loop["low"]
    assert speed["proposed_limit"] == pytest.approx(speed["proposed"] * (1 + speed["tolerance"]))
    assert speed["current_separates"] is True and "separates them" in speed["current"]
    progress = done.stderr
    assert "measuring reference (1 of 3)" in progress and "measuring wrong/loop (2 of 3)" in progress
    assert "speed: pair 10 of 11" in progress and "wrong/materialize" not in progress


def test_without_a_slow_variant_the_reference_is_measured_and_the_command_refuses() -> None:
    done = grader("exercise", "calibrate", "guarded-sum", "--pairs", "5")
    assert done.returncode == 2, done.stdout + done.stderr
    table = said(done)
    assert "guarded-sum: speed" in table and "reference vs itself" in table
    assert re.search(r"reference vs itself +\d+\.\d\dx +\d+\.\d\d-\d+\.\d\dx +5 ", table), table
    assert "no wrong/ variant is meant to be slow on speed" in table
    assert "rule: limit = threshold x (1 + tolerance)" in table
    assert "error: guarded-sum: no wrong/ variant expects too_slow" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_an_unknown_exercise_or_one_without_a_time_check_is_refused(tmp_path: Path) -> None:
    unknown = grader("exercise", "calibrate", "no-such-exercise")
    assert unknown.returncode == 2 and "no-such-exercise" in unknown.stderr
    assert "Traceback" not in unknown.stderr and unknown.stdout == ""
    root = tmp_path / "catalog"
    shutil.copytree(FIXTURES, root)
    toml = root / "exercises" / "guarded-sum" / "exercise.toml"
    toml.write_text(toml.read_text().split("[performance.speed]")[0])
    untimed = grader("exercise", "calibrate", "guarded-sum", catalog=root)
    assert untimed.returncode == 2, untimed.stdout + untimed.stderr
    assert "guarded-sum has no time check to calibrate" in untimed.stderr
    assert "measuring" not in untimed.stderr and "Traceback" not in untimed.stderr
