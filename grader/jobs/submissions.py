"""What happens to a submission row, each step a compare-and-set on (state, attempt, owner).

A worker claims a queued submission for one attempt and holds a lease it renews; a verdict is
written only by the holder of the current attempt's lease; the reconciler takes back submissions
whose lease ran out, and gives up after `max_attempts` deliveries. Two processes racing over the
same submission cannot both win any step: each step is one UPDATE whose WHERE clause states what
the row must still be, and the loser sees no row changed.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog import Exercise
from grader.lti import outbox
from grader.store import Attempt, ExerciseVersion, Submission, SubmissionState, User, transaction
from grader.store.models import utcnow

QUEUED, RUNNING, DONE, SYSTEM_ERROR = (
    SubmissionState.QUEUED,
    SubmissionState.RUNNING,
    SubmissionState.DONE,
    SubmissionState.SYSTEM_ERROR,
)


KINDS = ("submit", "public")


def _rows(session: Session, statement: Update) -> int:
    """How many rows an UPDATE changed: 0 means its condition no longer held."""
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount


def new_job_id(submission_id: int, attempt: int) -> str:
    """Unique per delivery: a re-enqueued attempt gets a new RQ job, never a reused one."""
    return f"submission-{submission_id}-{attempt}-{uuid.uuid4().hex[:8]}"


def exercise_version(session: Session, exercise: Exercise) -> ExerciseVersion:
    row = session.scalar(
        select(ExerciseVersion).where(
            ExerciseVersion.slug == exercise.slug, ExerciseVersion.version == exercise.version
        )
    )
    if row is None:
        row = ExerciseVersion(
            slug=exercise.slug,
            version=exercise.version,
            title=exercise.spec.title,
            resources=exercise.spec.resources,
        )
        session.add(row)
        session.flush()
    return row


def user_named(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name)
        session.add(user)
        session.flush()
    return user


def create(
    factory: sessionmaker[Session],
    exercise: Exercise,
    source: bytes,
    filename: str,
    *,
    user: str | None = None,
    user_id: int | None = None,
    kind: str = "submit",
) -> Submission:
    """Store a new queued submission (attempt 1) with the job id it will be enqueued under.
    `kind` is "submit" (hidden tests and performance) or "public" (the public tests only)."""
    if kind not in KINDS:
        raise ValueError(f"unknown submission kind {kind!r}")
    for tries_left in (2, 1, 0):
        try:
            return _create(factory, exercise, source, filename, user, user_id, kind)
        except IntegrityError:
            # The first submissions to a new exercise version (or of a new user name) race to
            # create its row; a loser finds it made when it tries again (once per such row).
            if not tries_left:
                raise
    raise AssertionError("unreachable")


def _create(
    factory: sessionmaker[Session],
    exercise: Exercise,
    source: bytes,
    filename: str,
    user: str | None,
    user_id: int | None,
    kind: str,
) -> Submission:
    with transaction(factory) as session:
        row = Submission(
            exercise_version=exercise_version(session, exercise),
            user_id=user_named(session, user).id if user else user_id,
            filename=filename,
            source=source,
            queue=exercise.spec.resources,
            kind=kind,
            state=QUEUED,
            attempt=1,
        )
        session.add(row)
        session.flush()
        row.job_id = new_job_id(row.id, 1)
        return row


def get(factory: sessionmaker[Session], submission_id: int) -> Submission | None:
    with factory() as session:
        row = session.get(Submission, submission_id)
        if row is not None:
            row.exercise_version  # noqa: B018 - loaded now, used after the session closes
        return row


def claim(
    factory: sessionmaker[Session], submission_id: int, attempt: int, worker: str, lease_s: float
) -> bool:
    """Start grading `attempt` of a queued submission; False when it is not ours to grade
    (already running elsewhere, finished, or superseded by a later attempt)."""
    now = utcnow()
    with transaction(factory) as session:
        claimed = _rows(
            session,
            update(Submission)
            .where(
                Submission.id == submission_id,
                Submission.attempt == attempt,
                Submission.state == QUEUED,
            )
            .values(
                state=RUNNING,
                lease_owner=worker,
                lease_expires_at=now + datetime.timedelta(seconds=lease_s),
                started_at=now,
            ),
        )
        if claimed:
            session.add(Attempt(submission_id=submission_id, number=attempt, worker=worker))
        return bool(claimed)


def renew(
    factory: sessionmaker[Session], submission_id: int, attempt: int, worker: str, lease_s: float
) -> bool:
    """Extend our lease; False when it is no longer ours (taken back by the reconciler)."""
    with transaction(factory) as session:
        return bool(
            _rows(
                session,
                update(Submission)
                .where(*_held(submission_id, attempt, worker))
                .values(lease_expires_at=utcnow() + datetime.timedelta(seconds=lease_s)),
            )
        )


def _held(submission_id: int, attempt: int, worker: str) -> tuple[Any, ...]:
    return (
        Submission.id == submission_id,
        Submission.attempt == attempt,
        Submission.state == RUNNING,
        Submission.lease_owner == worker,
    )


def finish(
    factory: sessionmaker[Session],
    submission_id: int,
    attempt: int,
    worker: str,
    verdict: dict[str, Any],
) -> bool:
    """Write the verdict of the attempt we hold. False (and nothing written) when the attempt is
    not ours any more: a duplicate or late delivery never overwrites a result."""
    now = utcnow()
    with transaction(factory) as session:
        row = session.get(Submission, submission_id)
        if row is None:
            return False
        started = row.started_at or now
        written = _rows(
            session,
            update(Submission)
            .where(*_held(submission_id, attempt, worker))
            .values(
                state=DONE,
                status=verdict["status"],
                verdict=verdict,
                lease_owner=None,
                lease_expires_at=None,
                finished_at=now,
                queued_s=(started - row.created_at).total_seconds(),
                grading_s=(now - started).total_seconds(),
            ),
        )
        if written:
            _close_attempt(session, submission_id, attempt, verdict["status"], None)
            outbox.record(session, submission_id, verdict, now)  # grades for learning platforms
        return bool(written)


def release(
    factory: sessionmaker[Session],
    submission_id: int,
    attempt: int,
    worker: str,
    *,
    message: str,
    max_attempts: int,
) -> Retry | None:
    """Give back an attempt that failed for reasons of ours (the grader broke, not the student's
    code): queue the next attempt, or end in system_error after `max_attempts`. None when the
    attempt was not ours to give back."""
    with transaction(factory) as session:
        return _next_attempt(
            session, _held(submission_id, attempt, worker), submission_id, attempt, message, max_attempts
        )


@dataclass(frozen=True)
class Retry:
    submission_id: int
    attempt: int  # the new attempt, or the last one when given up
    queue: str
    job_id: str | None  # None when given up
    gave_up: bool


def _next_attempt(
    session: Session,
    where: tuple[Any, ...],
    submission_id: int,
    attempt: int,
    message: str,
    max_attempts: int,
) -> Retry | None:
    row = session.get(Submission, submission_id)
    if row is None:
        return None
    if attempt >= max_attempts:
        done = _rows(
            session,
            update(Submission)
            .where(*where)
            .values(
                state=SYSTEM_ERROR,
                status="system_error",
                message=f"the grader failed this submission {attempt} times; last: {message}",
                verdict=None,
                lease_owner=None,
                lease_expires_at=None,
                finished_at=utcnow(),
            ),
        )
        if not done:
            return None
        _close_attempt(session, submission_id, attempt, "lost", message)
        return Retry(submission_id, attempt, row.queue, None, gave_up=True)
    job_id = new_job_id(submission_id, attempt + 1)
    done = _rows(
        session,
        update(Submission)
        .where(*where)
        .values(
            state=QUEUED,
            attempt=attempt + 1,
            job_id=job_id,
            lease_owner=None,
            lease_expires_at=None,
            started_at=None,
        ),
    )
    if not done:
        return None
    _close_attempt(session, submission_id, attempt, "lost", message)
    return Retry(submission_id, attempt + 1, row.queue, job_id, gave_up=False)


def _close_attempt(
    session: Session, submission_id: int, number: int, outcome: str, message: str | None
) -> None:
    _rows(
        session,
        update(Attempt)
        .where(
            Attempt.submission_id == submission_id,
            Attempt.number == number,
            Attempt.finished_at.is_(None),
        )
        .values(finished_at=utcnow(), outcome=outcome, message=message),
    )


def expire_leases(factory: sessionmaker[Session], max_attempts: int) -> list[Retry]:
    """Take back every running submission whose lease ran out (its worker died or hangs)."""
    now = utcnow()
    with factory() as session:
        expired = session.execute(
            select(Submission.id, Submission.attempt, Submission.lease_owner).where(
                Submission.state == RUNNING, Submission.lease_expires_at < now
            )
        ).all()
    retries = []
    for submission_id, attempt, owner in expired:
        where = (
            Submission.id == submission_id,
            Submission.attempt == attempt,
            Submission.state == RUNNING,
            Submission.lease_expires_at < now,
        )
        with transaction(factory) as session:
            retry = _next_attempt(
                session,
                where,
                submission_id,
                attempt,
                f"its worker ({owner}) stopped before finishing",
                max_attempts,
            )
        if retry is not None:
            retries.append(retry)
    return retries


def queued(factory: sessionmaker[Session], older_than_s: float) -> list[tuple[int, int, str, str]]:
    """(id, attempt, queue, job_id) of submissions queued for longer than `older_than_s`."""
    cutoff = utcnow() - datetime.timedelta(seconds=older_than_s)
    with factory() as session:
        rows = session.execute(
            select(Submission.id, Submission.attempt, Submission.queue, Submission.job_id).where(
                Submission.state == QUEUED, Submission.created_at < cutoff
            )
        ).all()
    return [(r[0], r[1], r[2], r[3] or "") for r in rows]


def replace_job(
    factory: sessionmaker[Session], submission_id: int, attempt: int, old_job_id: str
) -> str | None:
    """Give a queued submission whose job was lost a new job id (same attempt: it never ran)."""
    job_id = new_job_id(submission_id, attempt)
    with transaction(factory) as session:
        changed = _rows(
            session,
            update(Submission)
            .where(
                Submission.id == submission_id,
                Submission.attempt == attempt,
                Submission.state == QUEUED,
                Submission.job_id == old_job_id,
            )
            .values(job_id=job_id),
        )
    return job_id if changed else None


@dataclass(frozen=True)
class Regrade:
    submission_id: int
    attempt: int
    queue: str
    job_id: str


def regrade(
    factory: sessionmaker[Session], submission_ids: list[int], versions: dict[str, Exercise] | None = None
) -> list[Regrade]:
    """Queue finished submissions again as a new attempt (their verdict is replaced when it is
    done). With `versions` (slug -> exercise), each is graded against that version instead of
    the one it was made for. Submissions still queued or running are left alone."""
    done: list[Regrade] = []
    with transaction(factory) as session:
        rows = session.scalars(
            select(Submission).where(
                Submission.id.in_(submission_ids), Submission.state.in_((DONE, SYSTEM_ERROR))
            )
        ).all()
        for row in rows:
            attempt = row.attempt + 1
            job_id = new_job_id(row.id, attempt)
            values: dict[str, Any] = {
                "state": QUEUED,
                "attempt": attempt,
                "job_id": job_id,
                "status": None,
                "verdict": None,
                "message": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "started_at": None,
                "finished_at": None,
            }
            if versions and row.exercise_version.slug in versions:
                values["exercise_version_id"] = exercise_version(
                    session, versions[row.exercise_version.slug]
                ).id
            changed = _rows(
                session,
                update(Submission)
                .where(
                    Submission.id == row.id, Submission.attempt == row.attempt, Submission.state == row.state
                )
                .values(**values),
            )
            if changed:
                done.append(Regrade(row.id, attempt, row.queue, job_id))
    return done
