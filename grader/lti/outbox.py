"""The outbox of grades on their way to learning platforms (AGS), and the job that sends them.

When a verdict of a graded (`submit`) submission is written, `record` adds, in the same
transaction, one `LtiScorePush` for every resource link showing that concept in a course of a
platform the student launched from; after the commit `enqueue_for` puts one job per push on the
`lti` queue (the job carries only the push id). A push the job could not deliver for a reason
that may pass (the platform answered 5xx or 429, or could not be reached) waits until its
`next_attempt_at` (an exponential backoff, or the platform's Retry-After when longer) and the
workers' reconciler enqueues it again, as it does a push whose job Redis lost; after
`MAX_TRIES` it is `failed`, as is, at once, a push the platform refused with another 4xx.
Instructors see failed pushes and may send them again.

Scores only rise: a verdict below the best score already recorded for the same link and person
records nothing (best so far). An older score never overwrites a newer one: a push is
`superseded`, not sent, once a push graded later for the same link and person is sent or on
its way.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import CursorResult, Update, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from grader.jobs import LTI_QUEUE
from grader.jobs import queue as jobqueue
from grader.lti.services import SCORE_SCOPE, Score, ServiceError, Services
from grader.store import (
    LtiContext,
    LtiPlatform,
    LtiResourceLink,
    LtiScorePush,
    LtiUser,
    PushState,
    Submission,
    transaction,
)
from grader.store.models import utcnow

log = logging.getLogger("grader.lti.outbox")

QUEUE = LTI_QUEUE
JOB_FUNCTION = "grader.lti.outbox.send_job"
JOB_TIMEOUT_S = 300
MAX_TRIES = 8
BACKOFF_BASE_S = 30.0
BACKOFF_MAX_S = 3600.0
ERROR_CHARS = 2000
LIVE = (PushState.PENDING, PushState.SENT)


def _rows(session: Session, statement: Update) -> int:
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount


def new_job_id(push_id: int) -> str:
    return f"lti-push-{push_id}-{uuid.uuid4().hex[:8]}"


def score_of(verdict: dict[str, Any]) -> float:
    """1.0 for a pass, else 0.0. A fraction of tests passed would tell the student, through the
    platform's gradebook, how many hidden tests their code passes: it is never sent."""
    return 1.0 if verdict.get("status") == "passed" else 0.0


COMMENTS = {
    "passed": "Passed: every test and check holds.",
    "failed": "Not passed yet: a test failed.",
    "too_slow": "Not passed yet: correct, but slower than required.",
    "timeout": "Not passed yet: it ran out of time.",
    "memory_limit": "Not passed yet: it used too much memory.",
    "output_limit": "Not passed yet: it printed too much.",
    "runtime_error": "Not passed yet: it crashed or failed to import.",
    "rejected": "Not passed yet: the submission was refused (see the grader).",
}


def comment_of(verdict: dict[str, Any]) -> str:
    """What the platform shows with the score: the outcome only, never a test's detail."""
    return COMMENTS.get(str(verdict.get("status")), "Graded: see the grader for details.")


# --- recording (in the verdict's transaction) ---------------------------------------------------


def record(
    session: Session, submission_id: int, verdict: dict[str, Any], graded_at: datetime.datetime
) -> int:
    """Add the pushes a verdict earns, in the caller's transaction; returns how many."""
    row = session.get(Submission, submission_id)
    if row is None or row.kind != "submit" or row.user_id is None:
        return 0
    slug = row.exercise_version.slug
    targets = session.execute(
        select(LtiResourceLink, LtiUser)
        .join(LtiPlatform, LtiResourceLink.platform_id == LtiPlatform.id)
        .join(LtiContext, LtiResourceLink.context_pk == LtiContext.id)
        .join(LtiUser, LtiUser.platform_id == LtiResourceLink.platform_id)
        .where(
            LtiResourceLink.concept == slug,
            LtiResourceLink.lineitem_url.is_not(None),
            LtiUser.user_id == row.user_id,
            LtiPlatform.enabled.is_(True),
        )
        .order_by(LtiResourceLink.id, LtiUser.id)
    ).all()
    given = score_of(verdict)
    count = 0
    for link, lti_user in targets:
        scopes = link.ags_scopes or (link.context.ags_scopes if link.context is not None else [])
        if scopes and SCORE_SCOPE not in scopes:
            continue  # the platform did not let this tool post scores there
        best = session.scalar(  # earned here, whether or not it reached the platform yet
            select(func.max(LtiScorePush.score_given)).where(
                LtiScorePush.resource_link_pk == link.id, LtiScorePush.lti_user_pk == lti_user.id
            )
        )
        if best is not None and given < best:
            continue  # best so far: a lower score never replaces one already earned
        push = LtiScorePush(
            resource_link_pk=link.id,
            lti_user_pk=lti_user.id,
            submission_id=submission_id,
            score_given=given,
            score_maximum=1.0,
            comment=comment_of(verdict),
            graded_at=graded_at,
            state=PushState.PENDING,
            next_attempt_at=graded_at,
        )
        session.add(push)
        session.flush()
        push.job_id = new_job_id(push.id)
        count += 1
    return count


# --- enqueueing (after the commit) ---------------------------------------------------------------


def _enqueue(redis: Redis, push_id: int, job_id: str) -> None:
    jobqueue.queue(redis, QUEUE).enqueue_call(
        JOB_FUNCTION,
        kwargs={"push_id": push_id},
        job_id=job_id,
        timeout=JOB_TIMEOUT_S,
        result_ttl=3600,
        failure_ttl=24 * 3600,
        description=f"LTI score push {push_id}",
    )


def enqueue_for(factory: sessionmaker[Session], redis: Redis, submission_id: int) -> int:
    """Enqueue the pending pushes of a submission whose verdict was just committed. Best
    effort: a push whose job never reaches Redis is enqueued by the reconciler."""
    try:
        with factory() as session:
            pending = session.execute(
                select(LtiScorePush.id, LtiScorePush.job_id).where(
                    LtiScorePush.submission_id == submission_id, LtiScorePush.state == PushState.PENDING
                )
            ).all()
    except SQLAlchemyError as exc:
        log.warning(
            "submission %s: its LTI pushes not enqueued (%s); left for the reconciler", submission_id, exc
        )
        return 0
    count = 0
    for push_id, job_id in pending:
        try:
            _enqueue(redis, push_id, job_id or new_job_id(push_id))
            count += 1
        except RedisError as exc:
            log.warning("LTI push %s: not enqueued (%s); left for the reconciler", push_id, exc)
    return count


def _alive(redis: Redis, job_id: str | None) -> bool:
    if not job_id:
        return False
    try:
        job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in jobqueue.LIVE


def reconcile(
    factory: sessionmaker[Session],
    redis: Redis,
    *,
    grace_s: float = 5.0,
    now: datetime.datetime | None = None,
) -> int:
    """Enqueue again every pending push that is due (its retry time passed `grace_s` ago, or it
    was recorded that long ago) and whose job is not waiting or running; returns how many."""
    cutoff = (now or utcnow()) - datetime.timedelta(seconds=grace_s)
    with factory() as session:
        due = session.execute(
            select(LtiScorePush.id, LtiScorePush.job_id).where(
                LtiScorePush.state == PushState.PENDING, LtiScorePush.next_attempt_at <= cutoff
            )
        ).all()
    count = 0
    for push_id, old_job_id in due:
        if _alive(redis, old_job_id):
            continue
        job_id = new_job_id(push_id)
        with transaction(factory) as session:
            changed = _rows(
                session,
                update(LtiScorePush)
                .where(
                    LtiScorePush.id == push_id,
                    LtiScorePush.state == PushState.PENDING,
                    LtiScorePush.job_id.is_(None)
                    if old_job_id is None
                    else LtiScorePush.job_id == old_job_id,
                )
                .values(job_id=job_id),
            )
        if changed:
            _enqueue(redis, push_id, job_id)
            count += 1
    return count


# --- sending ------------------------------------------------------------------------------------


def backoff_s(tries: int, retry_after_s: float | None) -> float:
    """How long to wait after the `tries`-th failed try: doubling from `BACKOFF_BASE_S`, capped,
    and never less than what the platform asked for."""
    wait = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, tries - 1))
    return max(wait, retry_after_s or 0.0)


def send(
    factory: sessionmaker[Session],
    services: Services,
    push_id: int,
    *,
    max_tries: int = MAX_TRIES,
) -> str:
    """Try to deliver one push; returns its state afterwards (or "skipped" when another
    delivery of it is under way or it is not pending)."""
    with factory() as session:
        push = session.get(LtiScorePush, push_id)
        if push is None:
            return "skipped"
        if push.state != PushState.PENDING:
            return str(push.state)
        link, lti_user = push.resource_link, push.lti_user
        platform = link.platform
        tries = push.tries
        graded_at = push.graded_at
        score = Score(
            user_id=lti_user.sub,
            score_given=push.score_given,
            score_maximum=push.score_maximum,
            timestamp=graded_at,
            activity_progress=push.activity_progress,
            grading_progress=push.grading_progress,
            comment=push.comment,
        )
        lineitem_url, enabled = link.lineitem_url, platform.enabled
        session.expunge(platform)
    mine = (LtiScorePush.id == push_id, LtiScorePush.state == PushState.PENDING)
    with transaction(factory) as session:
        newer = session.scalar(
            select(LtiScorePush.id)
            .where(
                LtiScorePush.resource_link_pk == push.resource_link_pk,
                LtiScorePush.lti_user_pk == push.lti_user_pk,
                LtiScorePush.graded_at > graded_at,
                LtiScorePush.state.in_(LIVE),
            )
            .limit(1)
        )
        if newer is not None:
            changed = _rows(
                session,
                update(LtiScorePush)
                .where(*mine)
                .values(state=PushState.SUPERSEDED, last_error=f"a later score (push {newer}) replaces it"),
            )
            return str(PushState.SUPERSEDED) if changed else "skipped"
        if not lineitem_url or not enabled:
            why = "the platform is disabled" if not enabled else "the resource link has no line item any more"
            changed = _rows(
                session, update(LtiScorePush).where(*mine).values(state=PushState.FAILED, last_error=why)
            )
            return str(PushState.FAILED) if changed else "skipped"
        # claim this try: a duplicate delivery of the same push stops here
        if not _rows(
            session,
            update(LtiScorePush).where(*mine, LtiScorePush.tries == tries).values(tries=tries + 1),
        ):
            return "skipped"
    tries += 1
    try:
        answer = services.post_score(platform, lineitem_url, score)
    except ServiceError as exc:
        return _failed_try(factory, push_id, tries, exc, max_tries)
    with transaction(factory) as session:
        _rows(
            session,
            update(LtiScorePush)
            .where(*mine)
            .values(state=PushState.SENT, sent_at=utcnow(), response=answer, last_error=None),
        )
    log.info("LTI push %s sent (try %s)", push_id, tries)
    return str(PushState.SENT)


def _failed_try(
    factory: sessionmaker[Session], push_id: int, tries: int, exc: ServiceError, max_tries: int
) -> str:
    error = exc.message[:ERROR_CHARS]
    values: dict[str, Any]
    if exc.retryable and tries < max_tries:
        wait = backoff_s(tries, exc.retry_after_s)
        values = {
            "last_error": error,
            "next_attempt_at": utcnow() + datetime.timedelta(seconds=wait),
        }
        state = PushState.PENDING
        log.warning("LTI push %s: try %s failed (%s); again in %.0f s", push_id, tries, error, wait)
    else:
        why = error if not exc.retryable else f"gave up after {tries} tries; last: {error}"
        values = {"state": PushState.FAILED, "last_error": why}
        state = PushState.FAILED
        log.warning("LTI push %s failed: %s", push_id, why)
    if exc.status is not None:
        values["response"] = {"status": exc.status}
    with transaction(factory) as session:
        _rows(
            session,
            update(LtiScorePush)
            .where(LtiScorePush.id == push_id, LtiScorePush.state == PushState.PENDING)
            .values(**values),
        )
    return str(state)


# --- the job ------------------------------------------------------------------------------------


@dataclass
class OutboxContext:
    """What the job needs: the database, Redis (the token cache) and a services client."""

    factory: sessionmaker[Session]
    redis: Redis
    services: Services


_context: OutboxContext | None = None


def use(context: OutboxContext | None) -> None:
    """Set what `send_job` uses in this process (None: configure from the settings again)."""
    global _context
    _context = context


def _job_context() -> OutboxContext:
    global _context
    if _context is None:
        from grader.jobs import worker
        from grader.lti.keys import KeyStore

        grading = worker.context()  # the worker's own when it runs, else built from the settings
        keys = KeyStore(grading.settings.data_dir)
        _context = OutboxContext(grading.factory, grading.redis, Services(keys, grading.redis))
    return _context


def send_job(push_id: int) -> str:
    """The RQ job on the `lti` queue: one try at delivering one push."""
    ctx = _job_context()
    return send(ctx.factory, ctx.services, push_id)


# --- what instructors see -----------------------------------------------------------------------


@dataclass(frozen=True)
class PushView:
    id: int
    state: str
    person: str
    concept: str
    link_title: str | None
    platform: str
    score_given: float
    graded_at: datetime.datetime
    tries: int
    last_error: str | None


def troubled(factory: sessionmaker[Session], limit: int = 100) -> list[PushView]:
    """Pushes that failed, and pending ones that already failed a try, the newest first."""
    with factory() as session:
        rows = session.execute(
            select(LtiScorePush, LtiResourceLink, LtiUser, LtiPlatform)
            .join(LtiResourceLink, LtiScorePush.resource_link_pk == LtiResourceLink.id)
            .join(LtiUser, LtiScorePush.lti_user_pk == LtiUser.id)
            .join(LtiPlatform, LtiResourceLink.platform_id == LtiPlatform.id)
            .where(
                (LtiScorePush.state == PushState.FAILED)
                | ((LtiScorePush.state == PushState.PENDING) & (LtiScorePush.tries > 0))
            )
            .order_by(LtiScorePush.id.desc())
            .limit(limit)
        ).all()
        return [
            PushView(
                id=push.id,
                state=str(push.state),
                person=lti_user.name or lti_user.email or lti_user.sub,
                concept=link.concept,
                link_title=link.title,
                platform=platform.name,
                score_given=push.score_given,
                graded_at=push.graded_at,
                tries=push.tries,
                last_error=push.last_error,
            )
            for push, link, lti_user, platform in rows
        ]


def retry(factory: sessionmaker[Session], push_ids: Iterable[int]) -> list[tuple[int, str]]:
    """Make failed pushes pending again (a fresh count of tries); returns (push id, job id) of
    those changed, to enqueue after this commit."""
    done = []
    with transaction(factory) as session:
        for push_id in push_ids:
            job_id = new_job_id(push_id)
            if _rows(
                session,
                update(LtiScorePush)
                .where(LtiScorePush.id == push_id, LtiScorePush.state == PushState.FAILED)
                .values(state=PushState.PENDING, tries=0, next_attempt_at=utcnow(), job_id=job_id),
            ):
                done.append((push_id, job_id))
    return done


def enqueue(redis: Redis, pushes: Iterable[tuple[int, str]]) -> None:
    """Enqueue (push id, job id) pairs made pending by `retry` (the reconciler covers a failure)."""
    for push_id, job_id in pushes:
        try:
            _enqueue(redis, push_id, job_id)
        except RedisError as exc:
            log.warning("LTI push %s: not enqueued (%s); left for the reconciler", push_id, exc)
