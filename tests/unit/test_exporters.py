"""Exporters: our JSON round-trips, JUnit parses with a JUnit library, Gradescope has its fields."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser
import pytest

from grader.exporters import GradescopeExporter, JsonExporter, JunitExporter
from grader.verdict import Outcome, PerfResult, Provenance, Status, TestResult, Verdict


def verdict(status: Status = Status.FAILED, tests: list[TestResult] | None = None, **kw: object) -> Verdict:
    return Verdict(
        status=status,
        summary="1 of 3 tests passed",
        provenance=Provenance(
            exercise="causal-masking",
            exercise_version="abc",
            submission_sha256="f" * 64,
            sandbox="bwrap",
            graded_at="2026-11-22T10:00:00+00:00",
        ),
        tests=tests
        if tests is not None
        else [
            TestResult(name="test_ok", visibility="public", outcome=Outcome.PASSED, duration_s=0.1),
            TestResult(
                name="test_bad[top-left]",
                visibility="hidden",
                outcome=Outcome.FAILED,
                message="the output: differs <&>",
                hint="mask\x00 aligned?",
            ),
            TestResult(name="test_crash", visibility="hidden", outcome=Outcome.ERROR, message="ValueError"),
            TestResult(name="test_speed", visibility="hidden", outcome=Outcome.SKIPPED, message="later"),
        ],
        score=1,
        max_score=4,
        output="printed\x1b[0m stuff",
        **kw,  # type: ignore[arg-type]
    )


def test_json_round_trips() -> None:
    original = verdict()
    assert Verdict.model_validate_json(JsonExporter().render([original])) == original
    data = json.loads(JsonExporter().render([original]))
    assert data["status"] == "failed"
    assert isinstance(json.loads(JsonExporter().render([original, original])), list)


def test_junit_parses_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "out" / "junit.xml"
    JunitExporter().write([verdict(), verdict(Status.PASSED, [])], path)
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == ["causal-masking", "causal-masking"]
    first = suites[0]
    assert (first.tests, first.failures, first.errors, first.skipped) == (4, 1, 1, 1)
    cases = {c.name: c for c in first}
    assert cases["test_bad[top-left]"].result[0].message == "the output: differs <&>"
    assert "Hint: mask\ufffd aligned?" in cases["test_bad[top-left]"].result[0].text
    assert suites[1].tests == 1 and not list(suites[1])[0].result  # a passed verdict without tests


def test_junit_reports_rejections_and_performance() -> None:
    perf = PerfResult(
        name="speed", metric="time", ratio=5.0, threshold=3, tolerance=0.1, passed=False, decided_by="ci"
    )
    rejected = verdict(Status.REJECTED, [], message="Syntax error in attention.py, line 3")
    slow = verdict(Status.TOO_SLOW, [], performance=[perf])
    xml = junitparser.JUnitXml.fromstring(JunitExporter().render([rejected, slow]))
    (rej_suite, slow_suite) = list(xml)
    (case,) = list(rej_suite)
    assert case.result[0].text == "Syntax error in attention.py, line 3"
    names = [c.name for c in slow_suite]
    assert "speed" in names


def test_gradescope_results(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    GradescopeExporter().write([verdict()], path)
    data = json.loads(path.read_text())
    assert data["score"] == 1 and data["extra_data"]["status"] == "failed"
    assert [t["status"] for t in data["tests"]] == ["passed", "failed", "failed", "failed"]
    assert data["tests"][1]["max_score"] == 1.0 and data["tests"][1]["score"] == 0.0
    assert "Hint: mask" in data["tests"][1]["output"]
    assert {t["visibility"] for t in data["tests"]} == {"visible"}


def test_gradescope_takes_exactly_one_submission() -> None:
    with pytest.raises(ValueError):
        GradescopeExporter().render([verdict(), verdict()])


def test_writes_are_atomic(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    GradescopeExporter().write([verdict()], path)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
