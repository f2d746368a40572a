"""Grades exported into an nbgrader gradebook, so instructors who use formgrader see them.

Each exercise becomes an nbgrader assignment holding one notebook of the same name, with one
autograded cell per test whose points are the test's weight. A student's verdict becomes their
submission: a test earns its weight when it passed and nothing otherwise. Everything is written
through nbgrader's own `Gradebook`, so the database stays one that nbgrader can open and upgrade.
Exporting the same records again changes nothing.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, joinedload, sessionmaker

from grader.store.db import normalise_url
from grader.store.models import ExerciseVersion, Submission, SubmissionState, User
from grader.verdict import Status, Verdict

if TYPE_CHECKING:
    from nbgrader.api import Gradebook

log = logging.getLogger("grader.gradebook")

ID_CHARS = 128  # nbgrader keeps student ids and assignment names in VARCHAR(128)
_CHUNK = 500  # submission ids per query when loading the chosen verdicts


class GradebookError(Exception):
    """The gradebook database cannot be opened or written; the message says which and why."""


@dataclass(frozen=True)
class GradeRecord:
    """One student's verdict for one exercise, as it should appear in the gradebook."""

    student_id: str
    exercise: str
    verdict: Verdict
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        if not self.student_id.strip():
            raise ValueError("a grade record needs a non-empty student id")
        if not self.exercise.strip():
            raise ValueError("a grade record needs a non-empty exercise slug")


@dataclass
class ExportReport:
    assignments: int = 0  # assignments created or updated
    students: int = 0  # distinct students written
    grades: int = 0  # grade rows written
    skipped: list[str] = field(default_factory=list)  # why records were not written


def export_grades(db_url: str, records: Iterable[GradeRecord]) -> ExportReport:
    """Write `records` into the nbgrader gradebook at `db_url`, creating it if it is empty."""
    from nbgrader.api import Gradebook, InvalidEntry, MissingEntry

    report = ExportReport()
    chosen = _exportable(records, report.skipped)
    url = _prepare(db_url)
    by_exercise: dict[str, list[GradeRecord]] = {}
    for record in chosen:
        by_exercise.setdefault(record.exercise, []).append(record)
    try:
        with Gradebook(url.render_as_string(hide_password=False)) as gb:
            for slug, group in by_exercise.items():
                _write_assignment(gb, slug, group)
                for record in group:
                    report.grades += _write_submission(gb, record)
    except (SQLAlchemyError, InvalidEntry, MissingEntry) as exc:
        raise GradebookError(f"cannot write the gradebook at {_shown(url)}: {_reason(exc)}") from None
    report.assignments = len(by_exercise)
    report.students = len({record.student_id for record in chosen})
    return report


def records_from_store(
    factory: sessionmaker[Session], exercises: Collection[str] | None = None
) -> list[GradeRecord]:
    """For each (user, exercise), the best graded 'submit'-kind submission (a passed one if any —
    the latest passed —, else the latest done one with an earned status); system_error verdicts
    and submissions without a user are left out. student_id is the user's email (their name when
    they have none)."""
    with factory() as session:
        winners = _best_submissions(session, exercises)
        rows: list[Submission] = []
        for start in range(0, len(winners), _CHUNK):
            query = (
                select(Submission)
                .where(Submission.id.in_(winners[start : start + _CHUNK]))
                .options(joinedload(Submission.user), joinedload(Submission.exercise_version))
            )
            rows.extend(session.scalars(query))
        records = [record for row in rows if (record := _record(row)) is not None]
    return sorted(records, key=lambda r: (r.exercise, r.student_id))


def _exportable(records: Iterable[GradeRecord], skipped: list[str]) -> list[GradeRecord]:
    """The records worth writing, one per (exercise, student): a later record replaces an earlier one."""
    chosen: dict[tuple[str, str], GradeRecord] = {}
    for record in records:
        where = f"{record.student_id}/{record.exercise}"
        reason = _unexportable(record)
        if reason is not None:
            skipped.append(f"{where}: {reason}")
            continue
        if (record.exercise, record.student_id) in chosen:
            skipped.append(f"{where}: an earlier record, replaced by a later one for the same student")
        chosen[(record.exercise, record.student_id)] = record
    return list(chosen.values())


def _unexportable(record: GradeRecord) -> str | None:
    """Why `record` cannot be written, or None."""
    verdict = record.verdict
    if verdict.status is Status.SYSTEM_ERROR:
        return "a system error (ours), not a grade the student earned"
    if not verdict.tests:
        return f"the verdict ({verdict.status.value}) has no tests to grade"
    if len(record.student_id) > ID_CHARS or len(record.exercise) > ID_CHARS:
        return f"nbgrader allows at most {ID_CHARS} characters in a student id or assignment name"
    return None


def _prepare(db_url: str) -> URL:
    """The parsed URL, after creating nbgrader's tables in an empty database and stamping them at
    nbgrader's newest migration. (`Gradebook` would do it too, but asks an `alembic` command on
    PATH for that revision.)"""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from nbgrader.api import Base
    from nbgrader.dbutil import ALEMBIC_DIR

    try:
        url = make_url(normalise_url(db_url))
    except ArgumentError:
        raise GradebookError(
            f"not a gradebook database URL: {db_url!r} (expected e.g. sqlite:////abs/path/gradebook.db)"
        ) from None
    try:
        engine = create_engine(url)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise GradebookError(f"cannot use the gradebook URL {_shown(url)}: {exc}") from None
    try:
        with engine.begin() as connection:
            if not inspect(connection).get_table_names():
                Base.metadata.create_all(connection)
                MigrationContext.configure(connection).stamp(ScriptDirectory(ALEMBIC_DIR), "head")
    except SQLAlchemyError as exc:
        raise GradebookError(f"cannot open the gradebook at {_shown(url)}: {_reason(exc)}") from None
    finally:
        engine.dispose()
    return url


def _write_assignment(gb: Gradebook, slug: str, records: list[GradeRecord]) -> None:
    """The assignment, its notebook and a grade cell for every test any of `records` has."""
    gb.update_or_create_assignment(slug)
    gb.update_or_create_notebook(slug, slug)
    weights = {test.name: test.weight for record in records for test in record.verdict.tests}
    for name, weight in weights.items():
        gb.update_or_create_grade_cell(name, slug, slug, max_score=weight, cell_type="code")
    _complete_submissions(gb, slug)


def _complete_submissions(gb: Gradebook, slug: str) -> None:
    """Give every earlier submission a row for each cell, as `add_submission` does for a new one.
    A cell added since a submission was made counts as needing a manual grade until an export
    grades that submission again."""
    from nbgrader.api import Grade, SubmittedNotebook

    notebook = gb.find_notebook(slug, slug)
    with gb.db.no_autoflush:
        for submission in gb.find_assignment(slug).submissions:
            submitted = next((nb for nb in submission.notebooks if nb.notebook_id == notebook.id), None)
            if submitted is None:
                submitted = SubmittedNotebook(notebook=notebook, assignment=submission)
                gb.db.add(submitted)
            present = {grade.cell_id for grade in submitted.grades}
            for cell in notebook.grade_cells:
                if cell.id not in present:
                    gb.db.add(Grade(cell_id=cell.id, notebook=submitted))
    gb.db.commit()


def _write_submission(gb: Gradebook, record: GradeRecord) -> int:
    """The student, their submission and its grades; returns how many grades were written."""
    slug, student = record.exercise, record.student_id
    gb.update_or_create_student(student, **_student_fields(record))
    # subtle: nbgrader builds the submission's rows before adding it to the session; an autoflush
    # in between would warn and skip them
    with gb.db.no_autoflush:
        gb.update_or_create_submission(slug, student, timestamp=_graded_at(record.verdict))
    tests = {test.name: test for test in record.verdict.tests}
    grades = gb.find_submission_notebook(slug, slug, student).grades
    for grade in grades:
        test = tests.get(grade.name)
        grade.auto_score = test.weight if test is not None and test.ok else 0.0
        grade.needs_manual_grade = False
    gb.db.commit()
    return len(grades)


def _student_fields(record: GradeRecord) -> dict[str, Any]:
    """The names and email a record brings; missing ones leave what the gradebook has."""
    fields = {"first_name": record.first_name, "last_name": record.last_name, "email": record.email}
    return {key: value for key, value in fields.items() if value is not None}


def _graded_at(verdict: Verdict) -> datetime.datetime | None:
    """When the verdict was made, as nbgrader keeps timestamps: naive UTC."""
    try:
        moment = datetime.datetime.fromisoformat(verdict.provenance.graded_at)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return moment


def _best_submissions(session: Session, exercises: Collection[str] | None) -> list[int]:
    """Ids of the best graded submission of each (user, exercise)."""
    query = (
        select(
            Submission.id,
            Submission.user_id,
            ExerciseVersion.slug,
            Submission.status,
            Submission.finished_at,
            Submission.created_at,
        )
        .join(ExerciseVersion, Submission.exercise_version_id == ExerciseVersion.id)
        .where(
            Submission.kind == "submit",
            Submission.state == SubmissionState.DONE.value,
            Submission.user_id.is_not(None),
            Submission.status.is_not(None),
            Submission.verdict.is_not(None),
        )
    )
    if exercises is not None:
        query = query.where(ExerciseVersion.slug.in_(list(exercises)))
    best: dict[tuple[int, str], tuple[bool, datetime.datetime, int]] = {}
    for row_id, user_id, slug, status, finished_at, created_at in session.execute(query):
        if user_id is None or not _earned(status):
            continue
        rank = (status == Status.PASSED.value, finished_at or created_at, row_id)
        key = (user_id, slug)
        if key not in best or rank > best[key]:
            best[key] = rank
    return sorted(rank[2] for rank in best.values())


def _earned(status: str | None) -> bool:
    """Whether a stored status is one the student earned; an unknown one is not."""
    try:
        return Status(status or "").earned
    except ValueError:
        return False


def _record(row: Submission) -> GradeRecord | None:
    """The grade record of a stored submission, or None when its verdict cannot be read."""
    user: User | None = row.user
    if user is None:
        return None
    try:
        verdict = Verdict.model_validate(row.verdict)
    except ValidationError as exc:
        log.warning("submission %d: unreadable verdict left out of the gradebook: %s", row.id, exc)
        return None
    return GradeRecord(
        student_id=user.email or user.name,
        exercise=row.exercise_version.slug,
        verdict=verdict,
        email=user.email,
    )


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _reason(exc: Exception) -> str:
    """The database's own words when there are some, not SQLAlchemy's statement dump."""
    return str(getattr(exc, "orig", None) or exc)
