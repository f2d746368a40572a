"""Redis: the RQ queues that carry `{submission_id, attempt}` and the progress channels.

Nothing else travels through Redis: the submission's source, its verdict and its state live in
the database, so losing Redis loses no work (the reconciler enqueues again from the database).
"""

from __future__ import annotations

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from grader.events import Event, EventKind
from grader.jobs import RQ_QUEUES

JOB_FUNCTION = "grader.jobs.worker.grade_job"
PROGRESS_PREFIX = "grader:progress:"
# RQ's own limit on a job: far above any exercise's wall time, which the sandbox enforces itself.
JOB_TIMEOUT_S = 3600
LIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


class QueueError(Exception):
    """Redis cannot be reached or used; the message says what to do."""


def connect(url: str) -> Redis:
    try:
        redis = Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        redis.ping()
    except (RedisError, ValueError) as exc:
        raise QueueError(f"cannot reach Redis at {url}: {exc}") from None
    return redis


def queue(redis: Redis, name: str) -> Queue:
    if name not in RQ_QUEUES:
        raise QueueError(f"unknown queue {name!r}; the queues are {', '.join(RQ_QUEUES)}")
    return Queue(name, connection=redis, serializer=JSONSerializer)


def enqueue(redis: Redis, name: str, submission_id: int, attempt: int, job_id: str) -> int:
    """Put one delivery on queue `name`; returns how many jobs wait before it."""
    q = queue(redis, name)
    q.enqueue_call(
        JOB_FUNCTION,
        kwargs={"submission_id": submission_id, "attempt": attempt},
        job_id=job_id,
        timeout=JOB_TIMEOUT_S,
        result_ttl=3600,
        failure_ttl=24 * 3600,
        description=f"submission {submission_id}, attempt {attempt}",
    )
    position = max(0, len(q) - 1)
    publish(redis, submission_id, Event(EventKind.QUEUED, position=position, attempt=attempt))
    return position


def job_alive(redis: Redis, job_id: str) -> bool:
    """True while the job is still waiting or being worked on in Redis."""
    try:
        job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in LIVE


def position(redis: Redis, name: str, job_id: str) -> int | None:
    """How many jobs wait before `job_id` on its queue; None when it is not waiting."""
    ids = queue(redis, name).get_job_ids()
    return ids.index(job_id) if job_id in ids else None


def channel(submission_id: int) -> str:
    return f"{PROGRESS_PREFIX}{submission_id}"


def publish(redis: Redis, submission_id: int, event: Event) -> None:
    """Best effort: progress is a courtesy, the database has the truth."""
    try:
        redis.publish(channel(submission_id), event.to_json(submission=submission_id))
    except RedisError:
        pass


def enqueue_validation(redis: Redis, package_id: int, job_id: str, name: str = "cpu") -> None:
    """Queue the validation of an uploaded exercise package (the reference, the skeleton and
    every wrong variant graded in the sandbox)."""
    queue(redis, name).enqueue_call(
        "grader.jobs.worker.validate_job",
        kwargs={"package_id": package_id, "job_id": job_id},
        job_id=job_id,
        timeout=JOB_TIMEOUT_S,
        result_ttl=3600,
        failure_ttl=24 * 3600,
        description=f"validate exercise package {package_id}",
    )
