"""What the cohort gets wrong, through the web app: the hints that fired and the known-wrong
variants the submissions behaved like, on an exercise's instructor page and in the API, for
instructors only. Verdicts are written straight into the database (no worker), and so is the live
version's validation report.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog import Exercise, load_catalog
from grader.jobs import submissions
from grader.library import Library
from grader.settings import Settings
from grader.store import (
    ExercisePackage,
    PackageState,
    Role,
    User,
    make_engine,
    sessions,
    transaction,
    upgrade,
)
from grader.verdict import Outcome, Provenance, Status, TestResult, Verdict
from tests.integration.web_fixtures import OWN_SOURCE, WORKER, Person, World, client, log_in
from web import services

SLUG = "causal-masking"
API = f"/api/v1/instructor/exercises/{SLUG}/mistakes"
PAGE = f"/instructor/exercises/{SLUG}"
SCALE_HINT = "Divide the scores by the square root of the head size before the softmax."
MASK_HINT = "The given mask applies together with the causal one, not instead of it."
INSTRUCTOR_HINT = "A hint only the instructor's own try showed."
PUBLIC_RUN_HINT = "A hint only a run of the public tests showed."
OTHER_EXERCISE_HINT = "A hint of another exercise."
NO_SCALE_WHY = "forgot the 1/sqrt(d) scale on the scores"


def result(name: str, hint: str = "", outcome: Outcome = Outcome.FAILED) -> TestResult:
    return TestResult(
        name=name,
        visibility="hidden",
        outcome=outcome,
        message="" if outcome is Outcome.PASSED else "a hidden check failed",
        hint=hint,
    )


def ok(name: str) -> TestResult:
    return result(name, outcome=Outcome.PASSED)


def unscaled(hint: str = SCALE_HINT) -> list[TestResult]:
    """How the no_scale variant fails (other parameter ids than its validation recorded)."""
    return [
        ok("test_causal_mask[1-1-top_left]"),
        result("test_one_query_two_keys_by_hand", hint),
        result("test_causal_attention[lead0-3-5-8-8-top_left]", hint),
        result("test_attention_without_mask[lead1-4-4-16-8]", hint),
    ]


def mask_replaces_causal() -> list[TestResult]:
    return [ok("test_causal_mask[1-1-top_left]"), result("test_mask_and_causal[4-top_left]", MASK_HINT)]


def passing() -> list[TestResult]:
    return [ok("test_causal_mask[1-1-top_left]"), ok("test_one_query_two_keys_by_hand")]


def graded(
    factory: sessionmaker[Session],
    exercise: Exercise,
    user_id: int,
    tests: list[TestResult] | None,
    *,
    kind: str = "submit",
) -> int:
    """A submission by `user_id` with these test results (a worker's claim and finish), or left
    queued when `tests` is None."""
    row = submissions.create(
        factory, exercise, OWN_SOURCE.encode(), "solution.py", user_id=user_id, kind=kind
    )
    if tests is None:
        return row.id
    failing = any(not t.ok for t in tests)
    verdict = Verdict(
        status=Status.FAILED if failing else Status.PASSED,
        summary="graded by the tests",
        tests=tests,
        provenance=Provenance(
            exercise=exercise.slug,
            exercise_version=exercise.version,
            submission_sha256=hashlib.sha256(OWN_SOURCE.encode()).hexdigest(),
        ),
    )
    assert submissions.claim(factory, row.id, 1, WORKER, 60.0)
    assert submissions.finish(factory, row.id, 1, WORKER, verdict.model_dump(mode="json"))
    return row.id


def report(exercise: Exercise, *, failing: bool = True) -> dict[str, Any]:
    """A validation report of `exercise` as a worker stores it; without `failing`, as one made
    before the checks recorded the tests each variant failed."""
    checks: list[dict[str, Any]] = [
        {
            "exercise": exercise.slug,
            "subject": "reference",
            "expected": "passed",
            "got": "passed",
            "ok": True,
        },
        {"exercise": exercise.slug, "subject": "skeleton", "expected": "failed", "got": "failed", "ok": True},
    ]
    for wrong in exercise.wrong:
        check = {
            "exercise": exercise.slug,
            "subject": f"wrong/{wrong.name}",
            "expected": wrong.expect.value,
            "got": wrong.expect.value,
            "ok": True,
            "detail": "",
            "seconds": 0.5,
        }
        if failing:
            names = list(wrong.caught_by)
            if wrong.name == "no_scale":
                names = [
                    "test_one_query_two_keys_by_hand",
                    "test_causal_attention[lead0-1-1-8-8-top_left]",
                    "test_causal_attention[lead1-2-3-4-4-bottom_right]",
                    "test_attention_without_mask[lead0-1-1-8-8]",
                ]
            check["failing"] = names
        checks.append(check)
    return {"checks": checks}


def validated(world: World, exercise: Exercise, *, failing: bool = True) -> int:
    with transaction(world.factory) as session:
        row = ExercisePackage(
            slug=exercise.slug,
            version=exercise.version,
            title=exercise.spec.title,
            origin="bundled",
            path=None,
            state=PackageState.VALID,
            report=report(exercise, failing=failing),
        )
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def cohort(world: World) -> World:
    """Three students' graded submissions to causal-masking, and what must not count: an
    instructor's own try, a run of the public tests, a submission still queued, another exercise."""
    exercise = world.web.exercise(SLUG)
    f = world.factory
    ada, bob, pia = world.student.id, world.other.id, world.pro.id
    graded(f, exercise, ada, unscaled())
    graded(f, exercise, ada, passing())  # past it at the next attempt
    graded(f, exercise, bob, unscaled())
    graded(f, exercise, bob, unscaled())  # stuck
    graded(f, exercise, bob, unscaled(PUBLIC_RUN_HINT), kind="public")
    graded(f, exercise, pia, mask_replaces_causal())
    graded(f, exercise, pia, passing())
    graded(f, exercise, pia, None)
    graded(f, exercise, world.instructor.id, unscaled(INSTRUCTOR_HINT))
    rmsnorm = world.web.exercise("rmsnorm")
    graded(f, rmsnorm, ada, [result("test_rms[1]", OTHER_EXERCISE_HINT)])
    return world


def as_instructor(world: World) -> Any:
    c = client(world.app)
    log_in(c, world.instructor)
    return c


def test_the_api_says_which_hints_fired_and_which_variants_the_submissions_behaved_like(
    cohort: World,
) -> None:
    exercise = cohort.web.exercise(SLUG)
    package = validated(cohort, exercise)

    got = client(cohort.app).get(API, headers=cohort.instructor.bearer)

    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["exercise"], body["version"], body["validation"]) == (SLUG, exercise.version, package)
    assert (body["submissions"], body["students"], body["failing"], body["matched"]) == (6, 3, 4, 4)
    assert [h["hint"] for h in body["hints"]] == [SCALE_HINT, MASK_HINT]
    scale, mask = body["hints"]
    assert scale == {
        "hint": SCALE_HINT,
        "tests": ["test_attention_without_mask", "test_causal_attention", "test_one_query_two_keys_by_hand"],
        "visibility": ["hidden"],
        "results": 9,
        "submissions": 3,
        "students": 2,
        "cleared": 1,
        "stuck": 1,
        "median_attempts": 1,
        "max_attempts": 1,
    }
    assert (mask["results"], mask["students"], mask["cleared"], mask["stuck"]) == (1, 1, 1, 0)
    variants = {v["name"]: v for v in body["variants"]}
    assert set(variants) == {w.name for w in exercise.wrong}
    assert variants["no_scale"] == {
        "name": "no_scale",
        "why": NO_SCALE_WHY,
        "expect": "failed",
        "tests": ["test_attention_without_mask", "test_causal_attention", "test_one_query_two_keys_by_hand"],
        "submissions": 3,
        "students": 2,
    }
    assert (
        variants["mask_replaces_causal"]["submissions"],
        variants["mask_replaces_causal"]["students"],
    ) == (1, 1)
    assert body["variants"][0]["name"] == "no_scale"
    assert sum(v["submissions"] for v in body["variants"]) == 4
    assert (
        variants["calls_torch_sdpa"]["tests"] == [] and variants["calls_torch_sdpa"]["expect"] == "rejected"
    )
    assert body["variants_note"] == ""
    for left_out in (INSTRUCTOR_HINT, PUBLIC_RUN_HINT, OTHER_EXERCISE_HINT):
        assert left_out not in got.text


def test_the_exercise_page_shows_the_same(cohort: World) -> None:
    validated(cohort, cohort.web.exercise(SLUG))

    page = as_instructor(cohort).get(PAGE)

    assert page.status_code == 200, page.text
    assert 'id="mistakes"' in page.text
    hints = page.text.split('id="hints"', 1)[1].split("</table>", 1)[0]
    assert SCALE_HINT in hints and MASK_HINT in hints
    assert hints.index(SCALE_HINT) < hints.index(MASK_HINT)
    variants = page.text.split('id="variants"', 1)[1].split("</table>", 1)[0]
    row = next(r for r in variants.split("<tr>") if "wrong/no_scale.py" in r)
    assert NO_SCALE_WHY in row and "<td>3</td><td>2</td>" in row
    assert "4 of 4 failing submissions did" in page.text
    for left_out in (INSTRUCTOR_HINT, PUBLIC_RUN_HINT, OTHER_EXERCISE_HINT):
        assert left_out not in page.text
    cohort_page = as_instructor(cohort).get("/instructor/cohort")
    assert f'href="{PAGE}#mistakes"' in cohort_page.text


def test_without_a_validation_report_the_variants_wait_for_one(cohort: World) -> None:
    c = as_instructor(cohort)
    headers = cohort.instructor.bearer

    unvalidated = c.get(API, headers=headers).json()
    assert (
        unvalidated["variants"] is None and unvalidated["validation"] is None and unvalidated["matched"] == 0
    )
    assert unvalidated["variants_note"] == "Not available until the live version is validated."
    assert [h["hint"] for h in unvalidated["hints"]] == [SCALE_HINT, MASK_HINT]  # the hints do not wait
    page = c.get(PAGE).text
    assert "Not available until the live version is validated." in page and 'id="variants"' not in page

    package = services.packages.validate_live(cohort.web, SLUG)
    queued = c.get(API, headers=headers).json()
    assert queued["variants"] is None and queued["validation"] == package.id
    assert "under way" in queued["variants_note"]
    assert f'href="/instructor/packages/{package.id}"' in c.get(PAGE).text


def test_a_report_that_does_not_say_what_each_variant_fails_asks_for_a_new_validation(cohort: World) -> None:
    validated(cohort, cohort.web.exercise(SLUG), failing=False)
    body = client(cohort.app).get(API, headers=cohort.instructor.bearer).json()
    assert body["variants"] is None and "validate it again" in body["variants_note"]


def test_students_and_strangers_are_refused(cohort: World) -> None:
    validated(cohort, cohort.web.exercise(SLUG))
    student: Person = cohort.student
    ada = client(cohort.app)
    log_in(ada, student)

    api = ada.get(API, headers=student.bearer)
    assert (api.status_code, api.json()) == (403, {"detail": "Only instructors may do this."})
    page = ada.get(PAGE)
    assert page.status_code == 403
    anonymous = client(cohort.app).get(API)
    assert anonymous.status_code == 401
    for response in (api, page, anonymous):
        assert SCALE_HINT not in response.text and NO_SCALE_WHY not in response.text
    # and a student's own pages never carry the aggregate
    assert "What the cohort gets wrong" not in ada.get(f"/concepts/{SLUG}").text
    unknown = client(cohort.app).get(
        "/api/v1/instructor/exercises/no-such-thing/mistakes", headers=cohort.instructor.bearer
    )
    assert unknown.status_code == 404


# --- the query, on each database ---------------------------------------------------------------


@pytest.fixture
def web(database_url: str, tmp_path: Path) -> Iterator[services.Web]:
    engine = make_engine(database_url)
    upgrade(engine)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    catalog = load_catalog(settings.exercises_dir, settings.solutions_dir, strict=False)
    yield services.Web(
        settings=settings, factory=sessions(engine), library=Library(catalog, settings.data_dir)
    )
    engine.dispose()


@contextlib.contextmanager
def statements(web: services.Web) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    bind = web.factory.kw["bind"]
    event.listen(bind, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", record)


def test_one_query_over_the_verdicts_on_each_database(web: services.Web) -> None:
    exercise = web.exercise(SLUG)
    with transaction(web.factory) as session:
        people = [User(name=f"student-{i}", role=Role.STUDENT) for i in range(6)]
        session.add_all(people)
        session.flush()
        ids = [p.id for p in people]

    def queries() -> tuple[int, services.cohort.ExerciseMistakes]:
        with statements(web) as seen:
            found = services.cohort.exercise_mistakes(web, SLUG)
        return len(seen), found

    graded(web.factory, exercise, ids[0], unscaled())
    few, _ = queries()
    for user_id in ids:
        for _ in range(4):
            graded(web.factory, exercise, user_id, unscaled())
        graded(web.factory, exercise, user_id, passing())
    many, found = queries()

    assert many == few <= 4, f"{many} statements"
    scale = found.mistakes.hints[0]
    assert (scale.hint, scale.students, scale.submissions, scale.results) == (SCALE_HINT, 6, 25, 75)
    assert (scale.cleared, scale.stuck, scale.median_attempts, scale.max_attempts) == (6, 0, 4, 5)
    assert found.mistakes.variants is None  # nothing validated in this database
