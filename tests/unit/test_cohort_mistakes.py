"""What the cohort gets wrong, from hand-made verdicts: the hints that fire, how many attempts it
takes to get past each, and the known-wrong variants the submissions behave like."""

from __future__ import annotations

import dataclasses
from itertools import count
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from grader import validate
from grader.catalog import Exercise, WrongVariant
from grader.verdict import Outcome, Provenance, Status, TestResult, Verdict, function_of
from web.services.cohort import Graded, HintStats, Signature, mistakes_of, signatures_from

SCALE = "Divide the scores by sqrt(d)."
MASK = "Which positions may a query see?"
_ids = count(1)


def t(name: str, outcome: str = "passed", hint: str = "", visibility: str = "hidden") -> dict[str, Any]:
    return {"name": name, "visibility": visibility, "outcome": outcome, "message": "", "hint": hint}


def graded(user: int, *tests: dict[str, Any], status: str | None = None) -> Graded:
    if status is None:
        failing = [x for x in tests if x["outcome"] not in ("passed", "skipped")]
        status = "failed" if failing else "passed"
    return Graded(user_id=user, submission_id=next(_ids), status=status, tests=list(tests))


def passing(user: int) -> Graded:
    return graded(user, t("test_scale[4]"), t("test_scale[8]"), t("test_mask"), t("test_speed"))


def unscaled(user: int) -> Graded:
    """Fails both cases of test_scale with the scale hint (and skips the speed test)."""
    return graded(
        user,
        t("test_scale[4]", "failed", SCALE),
        t("test_scale[8]", "failed", SCALE),
        t("test_mask"),
        t("test_speed", "skipped"),
    )


def unmasked(user: int) -> Graded:
    return graded(
        user,
        t("test_scale[4]"),
        t("test_scale[8]"),
        t("test_mask", "failed", MASK),
        t("test_speed", "skipped"),
    )


def import_error(user: int) -> Graded:
    """A module that fails to import: every test errors, no hint fires, nothing is judged."""
    names = ("test_scale[4]", "test_scale[8]", "test_mask", "test_speed")
    return graded(user, *(t(n, "error") for n in names), status="runtime_error")


def hint(found: list[HintStats], text: str) -> HintStats:
    (row,) = [h for h in found if h.hint == text]
    return row


def test_function_of() -> None:
    assert function_of("test_mask[4-8-top_left]") == "test_mask"
    assert function_of("test_mask") == "test_mask"


def test_a_hint_counts_its_failing_results_submissions_and_students() -> None:
    found = mistakes_of([unscaled(1), unscaled(1), unscaled(2), unmasked(2), passing(3)], None)

    scale = hint(found.hints, SCALE)
    assert (scale.results, scale.submissions, scale.students) == (6, 3, 2)  # two results a submission
    assert scale.tests == ("test_scale",) and scale.visibility == ("hidden",)
    mask = hint(found.hints, MASK)
    assert (mask.results, mask.submissions, mask.students) == (1, 1, 1)
    assert [h.hint for h in found.hints] == [SCALE, MASK]  # the most students first
    assert (found.submissions, found.students, found.failing) == (5, 3, 4)


def test_attempts_to_get_past_a_hint_and_the_students_still_stuck() -> None:
    rows = [
        # fixed by the next submission, which fails another test (the tests carrying it passed)
        unscaled(1),
        unmasked(1),
        # two more submissions: the one between still shows it
        unscaled(2),
        unscaled(2),
        passing(2),
        # an import error in between shows nothing and clears nothing, yet is an attempt
        unscaled(3),
        import_error(3),
        passing(3),
        # still stuck: the hint fires on the last submission too
        unscaled(4),
        import_error(4),
        unscaled(4),
        # never shows it: not counted for it at all
        passing(5),
    ]
    scale = hint(mistakes_of(rows, None).hints, SCALE)

    assert scale.students == 4
    assert (scale.cleared, scale.stuck) == (3, 1)
    assert (scale.median_attempts, scale.max_attempts) == (2, 2)  # attempts 1, 2 and 2


def test_submissions_are_taken_in_order_whatever_order_they_come_in() -> None:
    first, fixed = unscaled(1), passing(1)
    scale = hint(mistakes_of([fixed, first], None).hints, SCALE)
    assert (scale.cleared, scale.stuck, scale.max_attempts) == (1, 0, 1)


def test_a_hint_that_moves_to_another_test_is_not_got_past() -> None:
    elsewhere = graded(1, t("test_scale[4]"), t("test_scale[8]"), t("test_mask", "failed", SCALE))
    scale = hint(mistakes_of([unscaled(1), elsewhere], None).hints, SCALE)
    assert (scale.cleared, scale.stuck) == (0, 1)
    assert scale.tests == ("test_mask", "test_scale")


def test_a_test_failing_another_check_gets_past_the_hint_an_error_does_not() -> None:
    rows = [
        unscaled(1),
        graded(1, t("test_scale[4]", "failed", "Check the dtype."), t("test_scale[8]"), t("test_mask")),
        unscaled(2),
        graded(2, t("test_scale[4]", "error"), t("test_scale[8]", "error"), t("test_mask")),
    ]
    scale = hint(mistakes_of(rows, None).hints, SCALE)
    assert (scale.cleared, scale.stuck) == (1, 1)


def test_a_hint_of_a_public_test_says_so() -> None:
    public = graded(1, t("test_shapes", "failed", "Check the shapes.", visibility="public"))
    assert hint(mistakes_of([public], None).hints, "Check the shapes.").visibility == ("public",)


def test_passing_submissions_fire_no_hint_and_match_no_variant() -> None:
    signatures = [Signature("no_scale", "forgot the scale", "failed", frozenset({"test_scale"}))]
    found = mistakes_of([passing(1), passing(2)], signatures)
    assert found.hints == [] and found.failing == 0 and found.matched == 0
    assert found.variants is not None and found.variants[0].submissions == 0


SIGNATURES = [
    Signature("no_scale", "forgot the 1/sqrt(d) scale", "failed", frozenset({"test_scale"})),
    Signature("future_mask", "triu instead of tril", "failed", frozenset({"test_mask"})),
    Signature("both", "no scale and no mask", "failed", frozenset({"test_scale", "test_mask"})),
    Signature("loop", "a Python loop", "too_slow", frozenset({"test_speed"})),
    Signature("forbidden", "calls torch's attention", "rejected", frozenset()),
]


def test_submissions_behave_like_the_variants_that_fail_the_same_test_functions() -> None:
    one_case = graded(3, t("test_scale[4]", "failed"), t("test_scale[8]"), t("test_mask"))  # ids ignored
    rows = [
        unscaled(1),
        unscaled(1),
        unscaled(2),
        unmasked(2),
        one_case,
        graded(4, t("test_scale[4]", "failed"), t("test_mask", "failed")),  # both at once
        graded(5, t("test_speed", "too_slow", "Vectorise the loop.")),
        graded(6, t("test_other", "failed")),  # like no variant
        import_error(7),  # fails every test: like no variant either
        graded(8, status="rejected"),  # no test ran: compared with nothing
        passing(9),
    ]
    found = mistakes_of(rows, SIGNATURES)

    assert found.variants is not None
    by_name = {v.name: v for v in found.variants}
    assert (by_name["no_scale"].submissions, by_name["no_scale"].students) == (4, 3)
    assert (by_name["future_mask"].submissions, by_name["future_mask"].students) == (1, 1)
    assert (by_name["both"].submissions, by_name["loop"].submissions) == (1, 1)
    assert by_name["forbidden"].submissions == 0 and by_name["forbidden"].tests == ()
    assert by_name["both"].tests == ("test_mask", "test_scale")
    assert by_name["no_scale"].why == "forgot the 1/sqrt(d) scale"
    assert [v.name for v in found.variants][:2] == ["no_scale", "both"]  # most submissions first
    assert found.failing == 9 and found.matched == 7


def test_variants_that_fail_the_same_tests_both_count_a_submission() -> None:
    twins = [
        *SIGNATURES,
        Signature("no_scale_again", "another way to forget it", "failed", frozenset({"test_scale"})),
    ]
    found = mistakes_of([unscaled(1)], twins)
    assert found.variants is not None
    assert {v.name for v in found.variants if v.submissions} == {"no_scale", "no_scale_again"}
    assert found.matched == 1


@pytest.mark.parametrize("signatures", [None, []])
def test_without_signatures_there_is_nothing_to_compare(signatures: list[Signature] | None) -> None:
    found = mistakes_of([unscaled(1)], signatures)
    assert found.variants == signatures and found.matched == 0 and found.failing == 1


def test_no_submissions() -> None:
    found = mistakes_of([], SIGNATURES)
    assert (found.submissions, found.students, found.failing, found.hints) == (0, 0, 0, [])
    assert found.variants is not None and all(v.submissions == 0 for v in found.variants)


# --- the variants' signatures, from validation -------------------------------------------------


def wrong(name: str, expect: Status = Status.FAILED) -> WrongVariant:
    return WrongVariant(path=Path(f"wrong/{name}.py"), expect=expect, why=f"the {name} mistake")


def exercise_with(*variants: WrongVariant) -> Exercise:
    return cast(Exercise, SimpleNamespace(slug="attention", wrong=list(variants)))


def checked(exercise: Exercise, variant: WrongVariant, *tests: TestResult) -> dict[str, Any]:
    """The check validation makes of `variant` graded with these results, as a report keeps it."""
    verdict = Verdict(
        status=variant.expect,
        summary="",
        tests=list(tests),
        provenance=Provenance(exercise="attention", exercise_version="v1", submission_sha256="0" * 64),
    )
    check = validate._expect(exercise, f"wrong/{variant.name}", verdict, variant.expect, ())
    return dataclasses.asdict(check)


def test_validation_records_the_tests_a_variant_fails_and_the_signature_reads_them() -> None:
    no_scale, forbidden = wrong("no_scale"), wrong("forbidden", Status.REJECTED)
    exercise = exercise_with(no_scale, forbidden)
    report = {
        "checks": [
            checked(
                exercise,
                no_scale,
                TestResult(name="test_scale[4]", visibility="hidden", outcome=Outcome.FAILED),
                TestResult(name="test_scale[8]", visibility="hidden", outcome=Outcome.ERROR),
                TestResult(name="test_mask", visibility="public", outcome=Outcome.PASSED),
                TestResult(name="test_speed", visibility="hidden", outcome=Outcome.SKIPPED),
            ),
            checked(exercise, forbidden),
        ]
    }
    assert report["checks"][0]["failing"] == ["test_scale[4]", "test_scale[8]"]

    signatures = signatures_from(exercise, report)
    assert signatures == [
        Signature("no_scale", "the no_scale mistake", "failed", frozenset({"test_scale"})),
        Signature("forbidden", "the forbidden mistake", "rejected", frozenset()),
    ]


def test_a_report_that_misses_a_variant_gives_no_signatures() -> None:
    no_scale, loop = wrong("no_scale"), wrong("loop", Status.TOO_SLOW)
    exercise = exercise_with(no_scale, loop)
    whole = {"checks": [checked(exercise, no_scale), checked(exercise, loop)]}
    assert signatures_from(exercise, whole) is not None
    older = {"checks": [{k: v for k, v in c.items() if k != "failing"} for c in whole["checks"]]}
    assert signatures_from(exercise, older) is None
    assert signatures_from(exercise, {"checks": whole["checks"][:1]}) is None
    assert signatures_from(exercise, None) is None
    assert signatures_from(exercise_with(), None) == []  # no variants: nothing to wait for
