"""Grades exported into an nbgrader gradebook, read back the way formgrader reads them."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from grader.notebooks.gradebook import (
    ExportReport,
    GradebookError,
    GradeRecord,
    export_grades,
    records_from_store,
)
from grader.store import make_engine, sessions, upgrade
from grader.store.db import transaction
from grader.store.models import ExerciseVersion, Submission, User
from grader.verdict import Outcome, Provenance, Status, TestResult, Verdict

SLUG = "quick-sum"
ADA, BOB = "ada@example.com", "bob@example.com"
GRADED_AT = "2025-03-01T11:00:00+01:00"  # 10:00 UTC


def make_verdict(
    tests: dict[str, tuple[Outcome, float]],
    *,
    status: Status | None = None,
    graded_at: str = GRADED_AT,
    marker: str = "",
) -> Verdict:
    """A verdict whose figures follow from `tests` (name -> outcome, weight)."""
    results = [
        TestResult(name=name, visibility="public", outcome=outcome, weight=weight)
        for name, (outcome, weight) in tests.items()
    ]
    passed = all(result.ok for result in results)
    return Verdict(
        status=status or (Status.PASSED if passed else Status.FAILED),
        summary=marker or "graded",
        score=sum(result.weight for result in results if result.ok),
        max_score=sum(result.weight for result in results),
        tests=results,
        provenance=Provenance(
            exercise=SLUG, exercise_version="v1", submission_sha256=marker or "0" * 64, graded_at=graded_at
        ),
    )


P, F = Outcome.PASSED, Outcome.FAILED
ADA_TESTS = {"test_small": (P, 2.0), "test_large": (F, 1.0), "test_style": (P, 0.0)}
ALL_PASSED = {name: (P, weight) for name, (_, weight) in ADA_TESTS.items()}
BOB_TESTS = {"test_small": (P, 2.0), "test_large": (P, 1.0), "test_style": (F, 0.0)}


def first_export() -> list[GradeRecord]:
    return [
        GradeRecord(ADA, SLUG, make_verdict(ADA_TESTS), first_name="Ada", last_name="Lovelace", email=ADA),
        GradeRecord(BOB, SLUG, make_verdict(BOB_TESTS)),
    ]


@pytest.fixture
def gradebook_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gradebook.db'}"


def contents(url: str) -> dict[str, list[Any]]:
    """What formgrader would show: every row count and score that matters."""
    from nbgrader.api import Grade, Gradebook, GradeCell, SubmittedAssignment

    with Gradebook(url) as gb:
        return {
            "assignments": [a.name for a in gb.assignments],
            "students": sorted(s.id for s in gb.students),
            "cells": sorted((c.name, c.max_score) for c in gb.db.query(GradeCell)),
            "submissions": sorted(
                (s.student.id, s.score, s.max_score) for s in gb.db.query(SubmittedAssignment)
            ),
            "grades": sorted(
                (g.student.id, g.name, g.auto_score, g.needs_manual_grade) for g in gb.db.query(Grade)
            ),
        }


def test_export_shows_assignment_student_submission_and_grades(gradebook_url: str) -> None:
    from nbgrader.api import Gradebook

    report = export_grades(gradebook_url, first_export())

    assert report == ExportReport(assignments=1, students=2, grades=6, skipped=[])
    with Gradebook(gradebook_url) as gb:
        assignment = gb.find_assignment(SLUG)
        assert [nb.name for nb in assignment.notebooks] == [SLUG]
        cells = {cell.name: cell.max_score for cell in gb.find_notebook(SLUG, SLUG).grade_cells}
        assert cells == {"test_small": 2.0, "test_large": 1.0, "test_style": 0.0}
        assert assignment.max_score == 3.0

        ada = gb.find_student(ADA)
        assert (ada.first_name, ada.last_name, ada.email) == ("Ada", "Lovelace", ADA)
        submission = gb.find_submission(SLUG, ADA)
        assert (submission.score, submission.max_score) == (2.0, 3.0)
        assert submission.timestamp == datetime.datetime(2025, 3, 1, 10, 0)
        assert submission.needs_manual_grade is False
        scores = {name: gb.find_grade(name, SLUG, SLUG, ADA).score for name in cells}
        assert scores == {"test_small": 2.0, "test_large": 0.0, "test_style": 0.0}
        assert gb.find_grade("test_large", SLUG, SLUG, ADA).failed_tests is True

        assert gb.find_student(BOB).first_name is None
        assert gb.find_submission(SLUG, BOB).score == 3.0
        assert gb.average_assignment_score(SLUG) == 2.5


def test_exporting_again_changes_nothing(gradebook_url: str) -> None:
    first = export_grades(gradebook_url, first_export())
    before = contents(gradebook_url)

    second = export_grades(gradebook_url, first_export())

    assert second == first
    after = contents(gradebook_url)
    assert after == before
    assert len(after["grades"]) == 6
    assert after["submissions"] == [(ADA, 2.0, 3.0), (BOB, 3.0, 3.0)]


def test_a_later_export_adds_a_new_test(gradebook_url: str) -> None:
    from nbgrader.api import Gradebook

    export_grades(gradebook_url, first_export())
    newer = make_verdict(ADA_TESTS | {"test_batched": (P, 3.0)}, graded_at="2025-03-02T09:00:00+00:00")

    report = export_grades(gradebook_url, [GradeRecord(ADA, SLUG, newer)])

    assert (report.assignments, report.students, report.grades) == (1, 1, 4)
    with Gradebook(gradebook_url) as gb:
        assert gb.find_grade_cell("test_batched", SLUG, SLUG).max_score == 3.0
        submission = gb.find_submission(SLUG, ADA)
        assert (submission.score, submission.max_score) == (5.0, 6.0)
        assert submission.timestamp == datetime.datetime(2025, 3, 2, 9, 0)
        assert gb.find_student(ADA).first_name == "Ada"  # a record without names keeps them
        # bob was not graded on the new test: formgrader asks for a grade rather than invent one
        bobs = gb.find_grade("test_batched", SLUG, SLUG, BOB)
        assert (bobs.auto_score, bobs.needs_manual_grade) == (None, True)
        assert gb.find_submission(SLUG, BOB).score == 3.0
        assert len(gb.find_submission_notebook(SLUG, SLUG, BOB).grades) == 4


def test_system_errors_and_verdicts_without_tests_are_skipped(gradebook_url: str) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    ours = make_verdict(ADA_TESTS, status=Status.SYSTEM_ERROR)
    rejected = make_verdict({}, status=Status.REJECTED)
    records = [GradeRecord(ADA, SLUG, ours), GradeRecord("carol", SLUG, rejected), first_export()[1]]

    report = export_grades(gradebook_url, records)

    assert (report.assignments, report.students, report.grades) == (1, 1, 3)
    assert len(report.skipped) == 2
    assert report.skipped[0].startswith(f"{ADA}/{SLUG}: ") and "system error" in report.skipped[0]
    assert report.skipped[1] == f"carol/{SLUG}: the verdict (rejected) has no tests to grade"
    with Gradebook(gradebook_url) as gb:
        assert [s.id for s in gb.students] == [BOB]
        with pytest.raises(MissingEntry):
            gb.find_submission(SLUG, ADA)


def test_a_repeated_record_is_replaced_by_the_later_one(gradebook_url: str) -> None:
    from nbgrader.api import Gradebook

    records = [first_export()[0], GradeRecord(ADA, SLUG, make_verdict(ALL_PASSED))]

    report = export_grades(gradebook_url, records)

    assert (report.students, report.grades, len(report.skipped)) == (1, 3, 1)
    with Gradebook(gradebook_url) as gb:
        assert gb.find_submission(SLUG, ADA).score == 3.0


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("nonsense", "not a gradebook database URL: 'nonsense'"),
        ("nosuchdialect://host/db", "cannot use the gradebook URL"),
        ("sqlite:///{tmp}/afile/gradebook.db", "cannot open the gradebook at .*unable to open database file"),
        ("sqlite:///{tmp}/afile", "cannot open the gradebook at .*file is not a database"),
    ],
)
def test_a_bad_url_or_path_is_a_clear_error(tmp_path: Path, url: str, match: str) -> None:
    (tmp_path / "afile").write_text("not a database\n" * 100)
    with pytest.raises(GradebookError, match=match) as caught:
        export_grades(url.format(tmp=tmp_path), first_export())
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_record_needs_a_student_and_an_exercise() -> None:
    with pytest.raises(ValueError, match="student id"):
        GradeRecord(" ", SLUG, make_verdict(ADA_TESTS))
    with pytest.raises(ValueError, match="exercise"):
        GradeRecord(ADA, "", make_verdict(ADA_TESTS))


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield sessions(engine)
    engine.dispose()


def at(hour: int) -> datetime.datetime:
    return datetime.datetime(2025, 3, 1, hour)


def store_submissions(factory: sessionmaker[Session]) -> None:
    """Ada: two passes then a later failure, and a later public check; bob: a failure, a runtime
    error, then a system error; carol: only a system error; one passed submission has no user."""
    with transaction(factory) as session:
        ada = User(name="ada", email=ADA)
        bob = User(name="bob")  # signed up through the CLI: no email
        carol = User(name="carol", email="carol@example.com")
        quick = ExerciseVersion(slug=SLUG, version="v1", title="Quick sum", resources="cpu")
        other = ExerciseVersion(slug="softmax", version="v1", title="Softmax", resources="cpu")
        session.add_all([ada, bob, carol, quick, other])

        def add(user: User | None, version: ExerciseVersion, hour: int, status: Status, **extra: str) -> None:
            tests = ALL_PASSED if status is Status.PASSED else ADA_TESTS
            verdict = make_verdict(tests, status=status, marker=f"{status.value}@{hour}")
            session.add(
                Submission(
                    user=user,
                    exercise_version=version,
                    filename="rows.py",
                    source=b"...",
                    queue="cpu",
                    state=extra.get("state", "done"),
                    kind=extra.get("kind", "submit"),
                    status=status.value,
                    verdict=verdict.model_dump(mode="json"),
                    created_at=at(hour) - datetime.timedelta(minutes=5),
                    finished_at=at(hour),
                )
            )

        add(ada, quick, 9, Status.PASSED)
        add(ada, quick, 10, Status.PASSED)
        add(ada, quick, 11, Status.FAILED)
        add(ada, quick, 12, Status.PASSED, kind="public")
        add(ada, other, 9, Status.FAILED)
        add(bob, quick, 9, Status.FAILED)
        add(bob, quick, 10, Status.RUNTIME_ERROR)
        add(bob, quick, 11, Status.SYSTEM_ERROR)
        add(bob, quick, 12, Status.PASSED, state="running")
        add(carol, quick, 9, Status.SYSTEM_ERROR)
        add(None, quick, 9, Status.PASSED)


def test_records_from_store_choose_each_students_best_submission(
    factory: sessionmaker[Session], gradebook_url: str
) -> None:
    store_submissions(factory)

    records = records_from_store(factory)

    chosen = [(r.exercise, r.student_id, r.verdict.summary) for r in records]
    assert chosen == [
        (SLUG, ADA, "passed@10"),  # the latest pass beats a later failure and a public check
        (SLUG, "bob", "runtime_error@10"),  # the latest earned verdict; the system error is ours
        ("softmax", ADA, "failed@9"),
    ]
    assert records[0].email == ADA and records[1].email is None
    assert [r.student_id for r in records_from_store(factory, [SLUG])] == [ADA, "bob"]
    assert records_from_store(factory, []) == []

    report = export_grades(gradebook_url, records)
    assert (report.assignments, report.students, report.grades, report.skipped) == (2, 2, 9, [])
