"""Concepts as a learner sees them: the map, one concept's card, what is unlocked, the editor's start."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog import Exercise
from grader.notebooks import is_notebook, module_from_notebook
from grader.static import Rejected
from grader.store import (
    Attempt,
    ExerciseVersion,
    Role,
    Submission,
    User,
)
from web.concepts import ConceptCard, ConceptStatus, Plan, TrackView, card, concept_map, next_up
from web.services.base import Web
from web.services.errors import Locked


def plan_of(user: User) -> Plan:
    return Plan.PRO if user.plan == "pro" or Role(user.role).teaches else Plan.FREE


def passed_slugs(factory: sessionmaker[Session], user_id: int) -> set[str]:
    """Concepts the learner passed: a submission whose verdict is a pass, or any attempt of one
    that passed (a regrade, pending or failing, never takes a pass away)."""
    with factory() as session:
        now = session.execute(
            select(ExerciseVersion.slug)
            .join(Submission, Submission.exercise_version_id == ExerciseVersion.id)
            .where(Submission.user_id == user_id, Submission.kind == "submit", Submission.status == "passed")
            .distinct()
        ).all()
        before = session.execute(
            select(ExerciseVersion.slug)
            .join(Submission, Submission.exercise_version_id == ExerciseVersion.id)
            .join(Attempt, Attempt.submission_id == Submission.id)
            .where(Submission.user_id == user_id, Submission.kind == "submit", Attempt.outcome == "passed")
            .distinct()
        ).all()
    return {slug for (slug,) in [*now, *before]}


def concepts_for(web: Web, user: User) -> list[TrackView]:
    return concept_map(web.catalog(), passed=passed_slugs(web.factory, user.id), plan=plan_of(user))


def next_for(web: Web, tracks: list[TrackView]) -> ConceptCard | None:
    """The concept this learner should open next (see `web.concepts.next_up`)."""
    return next_up(web.catalog(), tracks)


def card_for(web: Web, user: User, slug: str) -> ConceptCard:
    catalog = web.catalog()
    exercise = web.exercise(slug)
    return card(exercise, passed=passed_slugs(web.factory, user.id), plan=plan_of(user), order=catalog.order)


def unlocked_exercise(web: Web, user: User, slug: str) -> Exercise:
    """The exercise behind concept `slug`, or 403 when the learner has not unlocked it."""
    exercise = web.exercise(slug)
    concept = card_for(web, user, slug)
    if concept.status is ConceptStatus.LOCKED:
        raise Locked(f"{exercise.spec.title} is locked: {concept.reason}.")
    return exercise


def editor_source(exercise: Exercise, last: Submission | None) -> str:
    """What the concept page's editor starts with: the last submission's code (the module made
    from it, for a notebook), else the skeleton."""
    skeleton = exercise.skeleton.read_text(encoding="utf-8")
    if last is None:
        return skeleton
    if not is_notebook(last.filename, last.source):
        return last.source.decode("utf-8", "replace")
    try:
        return module_from_notebook(last.source, exercise, last.filename).source
    except Rejected:
        return skeleton


def student_notebook(web: Web, user: User, slug: str) -> bytes:
    """The notebook released to students for concept `slug` (403 while it is locked)."""
    from grader.notebooks.release import notebook_bytes

    return notebook_bytes(unlocked_exercise(web, user, slug))
