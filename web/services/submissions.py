"""Submissions: queueing one, reading one back (yours only), the history, the live state, and the
instructors' browsing and regrading."""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog import CatalogError, Exercise
from grader.jobs import queue as jobqueue
from grader.jobs import submissions
from grader.notebooks import NOTEBOOK_MAX_BYTES, is_notebook, module_from_notebook, submission_limit
from grader.static import Rejected
from grader.store import (
    ExerciseVersion,
    Role,
    Submission,
    User,
)
from grader.verdict import NotebookCell, Verdict
from web.concepts import ConceptCard, card, newly_unlocked
from web.services import metrics
from web.services.base import Web
from web.services.concepts import passed_slugs, plan_of, unlocked_exercise
from web.services.errors import (
    AtCapacity,
    Invalid,
    NotFound,
    ServiceError,
    TooLarge,
    TooManyWaiting,
    Unavailable,
)

MAX_ACTIVE_PER_USER = 3  # queued or running submissions one learner may have at once


def human_size(n: int) -> str:
    """A byte count as a person reads it: 900 bytes, 64 KB, 8.5 MB (rounded up, so a file just
    over a limit never reads as equal to it)."""
    if n < 1024:
        return f"{n} bytes"
    unit, name = (1024, "KB") if n < 1024 * 1024 else (1024 * 1024, "MB")
    value = math.ceil(n * 10 / unit) / 10
    return f"{value:g} {name}"


def module_filename(exercise: Exercise) -> str:
    """The name a submission sent without one gets (pasted code, an API call without a
    filename): the exercise's entrypoint module, e.g. attention.py, as the lesson calls it."""
    return f"{exercise.spec.entrypoint}.py"


def too_large(exercise: Exercise, filename: str, size: str, *, notebook: bool | None = None) -> str:
    """Why a submission named `filename`, `size` large (as `human_size` writes it), is refused.
    `notebook` overrides what the name says (the concept page fills in a name of its own)."""
    notebook = is_notebook(filename) if notebook is None else notebook
    limit = human_size(NOTEBOOK_MAX_BYTES if notebook else exercise.spec.source_kb * 1024)
    if notebook:
        return (
            f"{filename} is {size}; a notebook may be at most {limit}. "
            "Clear its outputs (Edit > Clear All Outputs), save it and upload it again."
        )
    return f"{filename} is {size}; {exercise.spec.title} takes files of at most {limit}."


def refuse_unread(web: Web, user: User, slug: str, size: int) -> NoReturn:
    """Refuse pasted code too large to have been read, `size` bytes as the request says: the same
    answer as for code that was read (a locked concept says so first)."""
    exercise = unlocked_exercise(web, user, slug)
    raise TooLarge(too_large(exercise, module_filename(exercise), human_size(size), notebook=False))


def submit(
    web: Web,
    user: User,
    slug: str,
    source: bytes,
    filename: str | None,
    kind: str,
    *,
    size: int | None = None,
) -> Submission:
    """Queue `source` for grading: "submit" runs the hidden tests and the performance checks,
    "public" only the public tests (quick feedback; it never counts as a pass). `filename`
    decides how it is read: a `.ipynb` is a notebook, graded through its solution cells; without
    one it is the exercise's entrypoint module. `size` is the upload's real size when only its
    first bytes were read."""
    if kind not in submissions.KINDS:
        raise Invalid(f"kind must be one of {', '.join(submissions.KINDS)}")
    exercise = unlocked_exercise(web, user, slug)
    filename = Path(filename or module_filename(exercise)).name[:255] or module_filename(exercise)
    limit = submission_limit(exercise.spec.source_kb, filename)
    real = max(len(source), size or 0)
    if real > limit:
        raise TooLarge(too_large(exercise, filename, human_size(real)))
    if not source.strip():
        raise Invalid("the submission is empty")
    with web.factory() as session:
        active = session.scalar(
            select(func.count())
            .select_from(Submission)
            .where(Submission.user_id == user.id, Submission.state.in_(("queued", "running")))
        )
    if active and active >= MAX_ACTIVE_PER_USER:
        with contextlib.suppress(RedisError, Unavailable):
            metrics.count_refusal(web.redis(), "per_user_limit")
        raise TooManyWaiting(f"you have {active} submissions waiting; wait for one to finish")
    refuse_at_capacity(web)
    redis = web.redis()
    row = submissions.create(web.factory, exercise, source, filename, user_id=user.id, kind=kind)
    assert row.job_id is not None
    with contextlib.suppress(RedisError):  # the reconciler enqueues it once Redis is back
        jobqueue.enqueue(redis, row.queue, row.id, row.attempt, row.job_id)
    return row


def refuse_at_capacity(web: Web) -> None:
    """Refuse a new submission while `queue_cap` submissions are queued (all learners together).
    One COUNT, not a lock: submissions sent at the same instant may each see room and all be
    queued, overshooting the cap by a few; a cap is back-pressure, not an exact limit."""
    cap = web.settings.queue_cap
    if cap <= 0:
        return
    with web.factory() as session:
        depth = metrics.queued_now(session)
        if depth < cap:
            return
        median_s = metrics.median_grading_s(session)
    try:
        redis = web.redis()
        workers = metrics.grading_workers(redis)
        with contextlib.suppress(RedisError):
            metrics.count_refusal(redis, "queue_cap")
    except (RedisError, Unavailable):
        workers = 1  # unknown: estimate as if one worker were grading
    retry_s = metrics.retry_after_s(depth, median_s, workers)
    raise AtCapacity(metrics.at_capacity_message(depth, retry_s), retry_s)


def visible_submission(web: Web, user: User, submission_id: int) -> Submission:
    with web.factory() as session:
        row = session.get(Submission, submission_id)
        if row is None or (row.user_id != user.id and not Role(user.role).teaches):
            raise NotFound(f"submission {submission_id}")
        row.exercise_version  # noqa: B018 - loaded while the session is open
        row.user  # noqa: B018
        session.expunge_all()
        return row


@dataclass(frozen=True)
class GradedModule:
    """What a notebook submission became: the module its cells make, which is what is graded."""

    notebook: str  # the notebook's file name
    module: str  # the module's file name, e.g. attention.py
    source: str  # the module's text; the notebook's own text when no module could be made
    cells: list[NotebookCell]
    notes: list[str]
    problem: str | None = None  # why no module could be made


def graded_module(web: Web, row: Submission, verdict: Verdict | None = None) -> GradedModule | None:
    """The module a notebook submission was graded as (None for a plain file), with the cells
    it came from: those the verdict records when it has them, else those extracted now."""
    if not is_notebook(row.filename, row.source):
        return None
    slug = row.exercise_version.slug
    try:
        exercise = web.library.exercise_at(web.factory, slug, row.exercise_version.version)
    except (CatalogError, KeyError, OSError):  # gone from the catalog: show the notebook as it is
        exercise = None
    recorded = verdict.notebook if verdict is not None else None
    module = recorded.module if recorded else f"{exercise.spec.entrypoint}.py" if exercise else ""
    raw_text = row.source.decode("utf-8", "replace")
    if exercise is None:
        return GradedModule(row.filename, module, raw_text, [], [], f"{slug} is no longer in the catalog")
    try:
        extraction = module_from_notebook(row.source, exercise, row.filename)
    except Rejected as exc:
        cells = list(recorded.cells) if recorded else []
        return GradedModule(row.filename, module, raw_text, cells, [], exc.message)
    return GradedModule(
        notebook=row.filename,
        module=recorded.module if recorded else extraction.module,
        source=extraction.source,
        cells=list(recorded.cells) if recorded else extraction.cells,
        notes=list(recorded.notes) if recorded else extraction.notes,
    )


def history(
    factory: sessionmaker[Session], user_id: int, slug: str | None = None, limit: int = 50
) -> list[Submission]:
    with factory() as session:
        query = (
            select(Submission)
            .join(ExerciseVersion)
            .where(Submission.user_id == user_id)
            .order_by(Submission.id.desc())
            .limit(limit)
        )
        if slug is not None:
            query = query.where(ExerciseVersion.slug == slug)
        rows = list(session.scalars(query))
        for row in rows:
            row.exercise_version  # noqa: B018
        return rows


def snapshot(web: Web, row: Submission) -> dict[str, Any]:
    """Where a submission stands now, as the first event of its stream and the API's answer."""
    info: dict[str, Any] = {
        "submission": row.id,
        "kind": "state",
        "state": row.state,
        "status": row.status,
        "attempt": row.attempt,
    }
    if row.state == "queued" and row.job_id:
        with contextlib.suppress(ServiceError, RedisError, jobqueue.QueueError):
            info["position"] = jobqueue.position(web.redis(), row.queue, row.job_id)
    if row.state == "system_error":
        info["message"] = "the grader failed on our side; it has been recorded"
    return info


def unlocked_by(web: Web, user: User, row: Submission) -> list[ConceptCard]:
    """The concepts this pass opened (for the banner): those that need `row`'s concept and are
    open now, provided this was the learner's first pass of it."""
    if row.status != "passed" or row.kind != "submit" or row.user_id != user.id:
        return []
    slug = row.exercise_version.slug
    with web.factory() as session:
        earlier = session.scalar(
            select(func.count())
            .select_from(Submission)
            .join(ExerciseVersion)
            .where(
                Submission.user_id == user.id,
                ExerciseVersion.slug == slug,
                Submission.kind == "submit",
                Submission.status == "passed",
                Submission.id < row.id,
            )
        )
    if earlier:
        return []
    catalog = web.catalog()
    passed = passed_slugs(web.factory, user.id) - {slug}
    opened = newly_unlocked(catalog, slug, passed=passed, plan=plan_of(user))
    return [
        card(catalog.exercises[s], passed=passed | {slug}, plan=plan_of(user), order=catalog.order)
        for s in opened
    ]


@dataclass(frozen=True)
class SubmissionFilter:
    user: str | None = None  # name or email, a substring
    exercise: str | None = None
    status: str | None = None  # a verdict status, or a state (queued, running, system_error)
    kind: str | None = None
    limit: int = 100
    offset: int = 0


def browse(web: Web, where: SubmissionFilter) -> tuple[list[Submission], int]:
    query = select(Submission).join(ExerciseVersion).outerjoin(User, Submission.user_id == User.id)
    if where.user:
        pattern = f"%{where.user.lower()}%"
        query = query.where(func.lower(User.name).like(pattern) | func.lower(User.email).like(pattern))
    if where.exercise:
        query = query.where(ExerciseVersion.slug == where.exercise)
    if where.status:
        query = query.where((Submission.status == where.status) | (Submission.state == where.status))
    if where.kind:
        query = query.where(Submission.kind == where.kind)
    with web.factory() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(
            session.scalars(
                query.order_by(Submission.id.desc())
                .limit(min(max(where.limit, 1), 500))
                .offset(max(where.offset, 0))
            )
        )
        for row in rows:
            row.exercise_version  # noqa: B018
            row.user  # noqa: B018
    return rows, total


def regrade(web: Web, submission_ids: list[int], *, live_version: bool = True) -> int:
    """Queue finished submissions again; with `live_version`, against the exercise's current
    version. Returns how many were queued."""
    redis = web.redis()
    versions = {e.slug: e for e in web.catalog()} if live_version else None
    queued = submissions.regrade(web.factory, submission_ids, versions)
    for item in queued:
        with contextlib.suppress(RedisError):
            jobqueue.enqueue(redis, item.queue, item.submission_id, item.attempt, item.job_id)
    return len(queued)


def status_counts(rows: list[Submission]) -> Counter[str]:
    return Counter(r.status or r.state for r in rows)
