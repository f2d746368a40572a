"""The cohort: every student against every concept, and each concept's pass rate."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select

from grader.store import (
    ExerciseVersion,
    Role,
    Submission,
    User,
)
from web.services.base import Web


@dataclass(frozen=True)
class CohortCell:
    passed: bool
    attempts: int
    last_status: str | None


@dataclass(frozen=True)
class ConceptStats:
    slug: str
    title: str
    learners: int  # who tried it
    passed: int
    pass_rate: float | None
    median_attempts: float | None  # submissions up to the first pass, over those who passed


@dataclass(frozen=True)
class Cohort:
    students: list[User]
    concepts: list[tuple[str, str]]  # (slug, title)
    cells: dict[tuple[int, str], CohortCell]
    stats: list[ConceptStats]


def cohort(web: Web) -> Cohort:
    catalog = web.catalog()
    with web.factory() as session:
        students = list(session.scalars(select(User).where(User.role == Role.STUDENT).order_by(User.name)))
        rows = session.execute(
            select(Submission.user_id, ExerciseVersion.slug, Submission.status, Submission.id)
            .join(ExerciseVersion)
            .where(Submission.kind == "submit", Submission.user_id.is_not(None))
            .order_by(Submission.id)
        ).all()
    per: dict[tuple[int, str], list[str | None]] = defaultdict(list)
    for user_id, slug, status, _ in rows:
        per[(user_id or 0, slug)].append(status)
    cells = {
        key: CohortCell(passed="passed" in statuses, attempts=len(statuses), last_status=statuses[-1])
        for key, statuses in per.items()
    }
    student_ids = {s.id for s in students}
    stats = []
    for exercise in catalog:
        slug = exercise.slug
        tried = [statuses for (uid, s), statuses in per.items() if s == slug and uid in student_ids]
        firsts = [statuses.index("passed") + 1 for statuses in tried if "passed" in statuses]
        stats.append(
            ConceptStats(
                slug=slug,
                title=exercise.spec.title,
                learners=len(tried),
                passed=len(firsts),
                pass_rate=len(firsts) / len(tried) if tried else None,
                median_attempts=statistics.median(firsts) if firsts else None,
            )
        )
    return Cohort(
        students=students,
        concepts=[(e.slug, e.spec.title) for e in catalog],
        cells=cells,
        stats=stats,
    )
