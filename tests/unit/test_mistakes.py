"""Failing tests grouped by the mistake they share, and the counts every report gives."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from grader.cli import render
from grader.engine import summarise
from grader.harness.plugin import _doc
from grader.notebooks.feedback import summary_markdown
from grader.verdict import Outcome, Provenance, Status, TestResult, Verdict, count, mistakes

Out = Outcome
SCALE = "forgot the 1/sqrt(d) scale?"
RAISED = "your code raised RuntimeError (attention.py, line 48, in f: `x = y`)"


def t(
    name: str,
    outcome: Outcome = Out.FAILED,
    hint: str = "",
    message: str = "values differ",
    public: bool = False,
) -> TestResult:
    return TestResult(
        name=name,
        visibility="public" if public else "hidden",
        outcome=outcome,
        message="" if outcome is Out.PASSED else message,
        hint=hint,
        description=f"what {name.split('[')[0]} checks",
    )


# a first submission of causal attention with three mistakes, in the order pytest ran the tests
TESTS = [
    t("test_shape", Out.PASSED, public=True),
    t("test_by_hand", hint=SCALE, public=True, message="got 0.1, expected 0.25"),
    t("test_mask[square]", Out.PASSED),
    t("test_half[float16]", Out.ERROR, message=RAISED),
    t("test_causal[square]", hint=SCALE),
    t("test_causal[fewer-queries]", hint=SCALE),
    t("test_unchanged"),
    t("test_causal[more-queries]", hint=SCALE),
    t("test_half[bfloat16]", Out.ERROR, message=RAISED),
    t("test_empty_rows[a]", hint="likely the empty rows"),
    t("test_empty_rows[b]"),
    t("test_speed", Out.SKIPPED, message="performance is measured once every correctness test passes"),
]


def test_failures_sharing_a_hint_are_one_mistake_and_the_largest_comes_first() -> None:
    found = mistakes(TESTS)
    assert [(m.kind, m.title, len(m.tests)) for m in found] == [
        ("hint", SCALE, 4),
        ("error", RAISED, 2),  # one exception at one line, whichever test met it
        ("test", "what test_unchanged checks", 1),  # ties: in the order the tests ran
        ("hint", "likely the empty rows", 1),
        ("test", "what test_empty_rows checks", 1),  # no hint: grouped by test function
    ]
    first = found[0]
    assert first.tests == [
        "test_by_hand",
        "test_causal[square]",
        "test_causal[fewer-queries]",
        "test_causal[more-queries]",
    ]
    assert first.example == "test_by_hand" and first.public == 1  # the public case: the learner can run it
    assert first.others() == "test_causal x3"
    assert found[1].outcome is Out.ERROR and found[1].example == "test_half[float16]"


def test_a_public_case_is_the_example_even_when_a_hidden_one_came_first() -> None:
    found = mistakes(
        [t("test_a[big]", hint="h"), t("test_a[small]", hint="h", public=True), t("test_b", hint="h")]
    )
    assert found[0].example == "test_a[small]"
    assert found[0].others() == "test_a, test_b"


def test_every_failing_test_is_in_exactly_one_mistake_and_nothing_else_is() -> None:
    grouped = [name for m in mistakes(TESTS) for name in m.tests]
    failing = [x.name for x in TESTS if x.outcome not in (Out.PASSED, Out.SKIPPED)]
    assert sorted(grouped) == sorted(failing) and len(grouped) == len(set(grouped))
    assert mistakes([t("test_ok", Out.PASSED), t("test_speed", Out.SKIPPED)]) == []


def test_too_slow_is_a_mistake_of_its_own_kind() -> None:
    (slow,) = mistakes([t("test_speed", Out.TOO_SLOW, hint="loop over rows?")])
    assert slow.outcome is Out.TOO_SLOW and slow.kind == "hint"


def test_parametrised_cases_are_told_apart_by_their_ids() -> None:
    assert (t("test_causal[batch-heads-top-left]").case, t("test_causal[batch-heads-top-left]").function) == (
        "batch-heads-top-left",
        "test_causal",
    )
    assert t("test_plain").case == "" and t("test_plain").function == "test_plain"
    assert t("test_x[a[1]]").case == "a[1]"


def test_counts_include_tests_not_run_and_every_report_says_the_same() -> None:
    counts = count(TESTS)
    assert (counts.passed, counts.failed, counts.not_run, counts.total) == (2, 9, 1, 12)
    summary = summarise(Status.FAILED, TESTS)
    assert summary == "2 of 12 tests passed (1 not run)"
    verdict = Verdict(
        status=Status.FAILED,
        summary=summary,
        score=2,
        max_score=12,
        tests=TESTS,
        provenance=Provenance(exercise="x", exercise_version="v", submission_sha256="s"),
    )
    console = Console(width=200, record=True)
    render.verdict(console, verdict)
    shown = " ".join(console.export_text().split())
    assert "2 of 12 tests passed (1 public, 1 hidden); 1 not run" in shown
    assert "2/12 points" in shown
    assert "1 FAIL fix this first: hint: forgot the 1/sqrt(d) scale?" in shown
    assert "also: test_causal x3" in shown
    notebook = summary_markdown(verdict)
    assert (
        "1. **Fix this first: hint: forgot the 1/sqrt\\(d\\) scale?** (4 failing tests, 1 public)" in notebook
    )
    dumped = verdict.model_dump(mode="json")  # the API's verdict: the same groups and counts
    assert dumped["counts"] == {"passed": 2, "failed": 9, "not_run": 1, "total": 12}
    assert [m["title"] for m in dumped["mistakes"]][:2] == [SCALE, RAISED]
    assert Verdict.model_validate(dumped).mistakes == verdict.mistakes  # stored and read back


def test_a_description_is_the_docstrings_whole_first_paragraph() -> None:
    def test_thing() -> None:
        """A query with no allowed key gets a zero output row,
        never NaN and never an average.

        The rest is for authors."""

    item = SimpleNamespace(obj=test_thing)
    assert _doc(item) == "A query with no allowed key gets a zero output row, never NaN and never an average."  # type: ignore[arg-type]
    assert _doc(SimpleNamespace(obj=None)) == ""  # type: ignore[arg-type]


def test_output_withheld_with_nothing_to_show_is_one_line_not_an_empty_box() -> None:
    def shown(output: str) -> str:
        verdict = Verdict(
            status=Status.FAILED,
            summary="s",
            score=0,
            max_score=1,
            output=output,
            output_withheld=True,
            provenance=Provenance(exercise="x", exercise_version="v", submission_sha256="s"),
        )
        console = Console(width=80, record=True)
        render.verdict(console, verdict)
        return console.export_text()

    empty = shown("")
    assert "your output: what your code printed during the hidden tests is not shown" in empty
    assert "╭─ your output" not in empty
    printed = shown("public print\n")
    assert "public print" in printed and "your output" in printed


def test_an_exponent_checks_limit_is_shown_with_its_tolerance() -> None:
    from grader.validate import _figure
    from grader.verdict import DecidedBy, Metric, PerfKind, PerfResult

    perf = PerfResult(
        name="memory",
        metric=Metric.ALLOCATION,
        kind=PerfKind.EXPONENT,
        ratio=0.99,
        threshold=0.0,
        tolerance=0.4,
        passed=False,
        decided_by=DecidedBy.SINGLE,
    )
    verdict = Verdict(
        status=Status.TOO_SLOW,
        summary="s",
        score=1,
        max_score=1,
        performance=[perf],
        provenance=Provenance(exercise="x", exercise_version="v", submission_sha256="s"),
    )
    console = Console(width=200, record=True)
    render.verdict(console, verdict)
    table = console.export_text()
    assert "n^0.4" in table and "over limit" in table and "Correct but over a performance limit" in table
    assert _figure(perf) == "memory n^0.99 (limit n^0.4)"
