"""The outbox of grades: recorded with the verdict, sent by a job on the `lti` queue, retried on
5xx/429 (honouring Retry-After) by the reconciler, failed at once on another 4xx, never an
older score over a newer one, never a lower score over a higher one."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from rq.serializers import JSONSerializer
from sqlalchemy import select

from grader.jobs import LTI_QUEUE
from grader.jobs import queue as jobqueue
from grader.jobs import worker as jobworker
from grader.lti import outbox
from grader.store import LtiScorePush, PushState, Role, Submission, User, transaction
from grader.store.models import utcnow
from tests.lti.services_fixtures import (  # the fixtures, by name
    STUDENT_SUB,
    ServicesWorld,
    catalog,
    certs,
    services_world,
)

__all__ = ["catalog", "certs", "services_world"]


@pytest.fixture
def world(services_world: ServicesWorld) -> Iterator[ServicesWorld]:
    outbox.use(outbox.OutboxContext(services_world.factory, services_world.redis, services_world.services))
    yield services_world
    outbox.use(None)


def pushes(world: ServicesWorld) -> list[LtiScorePush]:
    with world.factory() as session:
        return list(session.scalars(select(LtiScorePush).order_by(LtiScorePush.id)))


def push(world: ServicesWorld, push_id: int) -> LtiScorePush:
    with world.factory() as session:
        row = session.get(LtiScorePush, push_id)
        assert row is not None
        return row


def work(world: ServicesWorld) -> None:
    """Run what waits on the `lti` queue, as a worker does, until it is empty."""
    q = jobqueue.queue(world.redis, LTI_QUEUE)
    jobworker.GradingWorker([q], connection=world.redis, serializer=JSONSerializer).work(
        burst=True, logging_level="WARNING", with_scheduler=False
    )


def waiting(world: ServicesWorld) -> int:
    return len(jobqueue.queue(world.redis, LTI_QUEUE))


def later(seconds: float) -> datetime.datetime:
    return utcnow() + datetime.timedelta(seconds=seconds)


def test_a_pass_records_one_push_whose_job_posts_the_score(world: ServicesWorld) -> None:
    submission_id = world.grade("passed")
    [row] = pushes(world)
    with world.factory() as session:
        submission = session.get(Submission, submission_id)
        assert submission is not None
        finished = submission.finished_at
    assert (row.state, row.score_given, row.score_maximum) == (PushState.PENDING, 1.0, 1.0)
    assert row.graded_at == finished and row.submission_id == submission_id
    assert outbox.enqueue_for(world.factory, world.redis, submission_id) == 1
    assert waiting(world) == 1
    work(world)
    assert push(world, row.id).state == PushState.SENT
    [received] = world.fake.received
    assert received.lineitem == world.lineitem
    assert finished is not None
    assert received.body == {
        "userId": STUDENT_SUB,
        "scoreGiven": 1.0,
        "scoreMaximum": 1.0,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": finished.replace(tzinfo=datetime.UTC).isoformat(timespec="milliseconds"),
        "comment": "Passed: every test and check holds.",
    }
    assert world.fake.scores[(world.lineitem, STUDENT_SUB)] == received.body


def test_the_score_and_comment_carry_nothing_of_the_hidden_tests(world: ServicesWorld) -> None:
    hidden = [
        {"name": "test_hidden_secret", "visibility": "hidden", "outcome": "failed", "message": "7 != 8"}
    ]
    world.grade("failed", score=2.0, max_score=3.0, tests=hidden)
    [row] = pushes(world)
    assert row.score_given == 0.0  # not 2/3: how many hidden tests pass stays here
    assert row.comment is not None and "secret" not in row.comment and "7" not in row.comment


def test_public_runs_and_people_without_a_launch_record_nothing(world: ServicesWorld) -> None:
    world.grade("passed", kind="public")
    with transaction(world.factory) as session:
        stranger = User(name="not-from-the-lms", role=Role.STUDENT)
        session.add(stranger)
        session.flush()
        stranger_id = stranger.id
    world.grade("passed", user_id=stranger_id)
    assert pushes(world) == []
    assert outbox.reconcile(world.factory, world.redis, now=later(60)) == 0


def test_503s_are_retried_then_the_score_is_sent(
    world: ServicesWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "BACKOFF_BASE_S", 10.0)
    world.fake.fail("scores", 503, times=2)
    world.grade("passed")
    [row] = pushes(world)
    before = utcnow()
    assert outbox.send(world.factory, world.services, row.id) == PushState.PENDING
    first = push(world, row.id)
    assert first.tries == 1 and "503" in (first.last_error or "")
    assert first.next_attempt_at >= before + datetime.timedelta(seconds=10)  # the backoff after one try
    assert outbox.reconcile(world.factory, world.redis, now=later(5)) == 0  # not due yet
    assert outbox.reconcile(world.factory, world.redis, now=later(60)) == 1
    before = utcnow()
    work(world)  # the second try: 503 again, 20 s to wait
    second = push(world, row.id)
    assert (second.state, second.tries) == (PushState.PENDING, 2)
    assert second.next_attempt_at >= before + datetime.timedelta(seconds=20)
    assert outbox.reconcile(world.factory, world.redis, now=later(60)) == 1
    work(world)
    assert push(world, row.id).state == PushState.SENT
    assert len(world.fake.received) == 1


def test_a_429_waits_as_long_as_retry_after_says(
    world: ServicesWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "BACKOFF_BASE_S", 1.0)
    world.fake.fail("scores", 429, retry_after="120")
    world.grade("passed")
    [row] = pushes(world)
    before = utcnow()
    assert outbox.send(world.factory, world.services, row.id) == PushState.PENDING
    throttled = push(world, row.id)
    assert throttled.next_attempt_at >= before + datetime.timedelta(seconds=120)  # not the 1 s backoff
    assert outbox.reconcile(world.factory, world.redis, now=later(60)) == 0
    assert outbox.reconcile(world.factory, world.redis, now=later(200)) == 1
    work(world)
    assert push(world, row.id).state == PushState.SENT


def test_retries_stop_at_the_cap_and_the_push_fails_with_why(world: ServicesWorld) -> None:
    world.fake.fail("scores", 502, times=3)
    world.grade("passed")
    [row] = pushes(world)
    for _ in range(2):
        assert outbox.send(world.factory, world.services, row.id, max_tries=3) == PushState.PENDING
    assert outbox.send(world.factory, world.services, row.id, max_tries=3) == PushState.FAILED
    failed = push(world, row.id)
    assert failed.tries == 3 and (failed.last_error or "").startswith("gave up after 3 tries")
    assert "502" in (failed.last_error or "")
    assert outbox.reconcile(world.factory, world.redis, now=later(10_000)) == 0  # failed stays failed


def test_a_400_fails_at_once_is_shown_and_can_be_retried(world: ServicesWorld) -> None:
    world.fake.fail("scores", 400, body="user lms-student-1 is not enrolled")
    world.grade("passed")
    [row] = pushes(world)
    assert outbox.send(world.factory, world.services, row.id) == PushState.FAILED
    failed = push(world, row.id)
    assert failed.tries == 1 and "400" in (failed.last_error or "")
    assert "is not enrolled" in (failed.last_error or "")
    [shown] = outbox.troubled(world.factory)
    assert (shown.id, shown.state, shown.person, shown.concept) == (
        row.id,
        "failed",
        "Grace Hopper",
        "quick-sum",
    )
    again = outbox.retry(world.factory, [row.id])
    assert [push_id for push_id, _ in again] == [row.id]
    assert outbox.retry(world.factory, [row.id]) == []  # only failed pushes are retried
    outbox.enqueue(world.redis, again)
    work(world)
    assert push(world, row.id).state == PushState.SENT
    assert outbox.troubled(world.factory) == []


def test_an_older_score_never_overwrites_a_newer_one(world: ServicesWorld) -> None:
    world.grade("failed")
    world.grade("passed")
    older, newer = pushes(world)
    assert older.graded_at < newer.graded_at
    assert outbox.send(world.factory, world.services, newer.id) == PushState.SENT
    assert outbox.send(world.factory, world.services, older.id) == PushState.SUPERSEDED
    assert push(world, older.id).last_error == f"a later score (push {newer.id}) replaces it"
    assert [r.body["scoreGiven"] for r in world.fake.received] == [1.0]
    assert world.fake.scores[(world.lineitem, STUDENT_SUB)]["scoreGiven"] == 1.0


def test_a_lower_score_after_a_pass_is_not_recorded(world: ServicesWorld) -> None:
    world.grade("passed")
    world.grade("failed")  # best so far: the pass stands
    assert [(p.score_given, p.state) for p in pushes(world)] == [(1.0, PushState.PENDING)]
    world.grade("passed")  # as good: sent again, newer
    assert [p.score_given for p in pushes(world)] == [1.0, 1.0]


def test_a_lost_job_is_enqueued_again_by_the_reconciler(world: ServicesWorld) -> None:
    world.grade("passed")
    [row] = pushes(world)  # committed, but its job never reached Redis (the worker died)
    assert waiting(world) == 0
    assert outbox.reconcile(world.factory, world.redis, grace_s=600) == 0  # too fresh to call lost
    assert outbox.reconcile(world.factory, world.redis, grace_s=5, now=later(30)) == 1
    assert push(world, row.id).job_id != row.job_id
    assert outbox.reconcile(world.factory, world.redis, grace_s=5, now=later(30)) == 0  # its job waits
    work(world)
    assert push(world, row.id).state == PushState.SENT
    assert len(world.fake.received) == 1


def test_a_duplicate_delivery_sends_once(world: ServicesWorld) -> None:
    world.grade("passed")
    [row] = pushes(world)
    assert outbox.enqueue_for(world.factory, world.redis, row.submission_id or 0) == 1
    outbox.reconcile(world.factory, world.redis, grace_s=0, now=later(30))  # its job is alive: left
    assert waiting(world) == 1
    work(world)
    assert outbox.send(world.factory, world.services, row.id) == PushState.SENT  # a late duplicate
    assert len(world.fake.received) == 1


def test_cpu_workers_serve_the_lti_queue_after_their_own() -> None:
    assert jobworker.served_queues(["cpu"]) == ["cpu", "lti"]
    assert jobworker.served_queues(["gpu"]) == ["gpu"]
    assert jobworker.served_queues(["cpu", "lti"]) == ["cpu", "lti"]


def test_a_failed_pass_sent_again_is_not_undone_by_a_later_lower_score(world: ServicesWorld) -> None:
    world.fake.fail("scores", 400, body="the column is closed")
    world.grade("passed")
    [passed] = pushes(world)
    assert outbox.send(world.factory, world.services, passed.id) == PushState.FAILED
    world.grade("failed")  # lower than what was earned: nothing to send
    assert len(pushes(world)) == 1
    outbox.retry(world.factory, [passed.id])  # the column is open again
    assert outbox.send(world.factory, world.services, passed.id) == PushState.SENT
    assert world.fake.scores[(world.lineitem, STUDENT_SUB)]["scoreGiven"] == 1.0
