"""What /metrics reports, computed when it is scraped from the database and Redis (the state every
web process and host shares), never from counters kept in one process: any web process on any host
answers the same. A scrape costs four SQL queries and a handful of Redis calls.

Also the grader's back-pressure: how many submissions are queued, how long until one more may be
taken (Retry-After), and the count of refused submissions (kept in Redis, shared like the rest)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis import Redis
from sqlalchemy import case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from grader.jobs import QUEUES, RQ_QUEUES
from grader.jobs import queue as jobqueue
from grader.store import Submission
from grader.store.models import utcnow
from web.services.base import Web

# upper bounds (seconds) of the grading and waiting time histograms: 1 s to 30 min
BUCKETS_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)
REFUSED_KEY = "grader:metrics:refused"  # Redis hash: reason -> submissions refused for it
REFUSAL_REASONS = ("queue_cap", "per_user_limit")
RETRY_AFTER_S = (10, 600)  # the range a Retry-After is clamped to
DEFAULT_GRADING_S = 30.0  # assumed per submission before any has been graded
RECENT_GRADINGS = 100  # gradings whose median estimates the next one's time


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per upper bound of `BUCKETS_S`, the count and the sum."""

    cumulative: tuple[int, ...]
    count: int
    total: float


@dataclass(frozen=True)
class Snapshot:
    """Everything /metrics reports, read at one scrape."""

    waiting: dict[str, int]  # queue -> jobs waiting in RQ
    running: dict[str, int]  # queue -> jobs started in RQ
    workers: dict[str, int]  # queue -> workers alive serving it
    states: dict[str, int]  # submission state -> submissions in it now
    gradings: dict[str, int]  # verdict status (or system_error) -> submissions graded so
    grading: Histogram
    waiting_time: Histogram
    oldest_queued_s: float  # age of the oldest queued submission; 0 when none is queued
    refused: dict[str, int] = field(default_factory=dict)  # reason -> submissions refused
    queue_cap: int = 0


def workers_alive(redis: Redis) -> dict[str, int]:
    """Per queue, the RQ workers registered and alive (a dead worker's key expires with its
    heartbeat, and RQ leaves it out)."""
    from rq import Worker

    alive = dict.fromkeys(RQ_QUEUES, 0)
    for worker in Worker.all(connection=redis):
        for name in worker.queue_names():
            if name in alive:
                alive[name] += 1
    return alive


def histogram(session: Session, column: InstrumentedAttribute[float | None]) -> Histogram:
    """The histogram of `column` over all submissions that have it, in one query."""
    row = session.execute(
        select(
            func.count(column),
            func.coalesce(func.sum(column), 0.0),
            *(func.coalesce(func.sum(case((column <= bound, 1), else_=0)), 0) for bound in BUCKETS_S),
        ).where(column.is_not(None))
    ).one()
    return Histogram(cumulative=tuple(int(n) for n in row[2:]), count=int(row[0]), total=float(row[1]))


def snapshot(web: Web) -> Snapshot:
    """Read the metrics from Redis and the database (raises RedisError or SQLAlchemyError when
    either fails; the route answers 503)."""
    from rq.registry import StartedJobRegistry

    redis = web.redis()
    waiting, running = {}, {}
    for name in RQ_QUEUES:
        q = jobqueue.queue(redis, name)
        waiting[name] = q.count
        running[name] = StartedJobRegistry(queue=q).count
    workers = workers_alive(redis)
    refused_raw = redis.hgetall(REFUSED_KEY)
    refused = dict.fromkeys(REFUSAL_REASONS, 0)
    for key, value in refused_raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        refused[name] = int(value)

    states: dict[str, int] = {}
    gradings: dict[str, int] = {}
    with web.factory() as session:
        for state, status, n in session.execute(
            select(Submission.state, Submission.status, func.count()).group_by(
                Submission.state, Submission.status
            )
        ).all():
            states[state] = states.get(state, 0) + n
            if state == "done" and status:
                gradings[status] = gradings.get(status, 0) + n
            elif state == "system_error":
                gradings["system_error"] = gradings.get("system_error", 0) + n
        grading = histogram(session, Submission.grading_s)
        waiting_time = histogram(session, Submission.queued_s)
        oldest = session.scalar(select(func.min(Submission.created_at)).where(Submission.state == "queued"))
    oldest_s = max((utcnow() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return Snapshot(
        waiting=waiting,
        running=running,
        workers=workers,
        states=states,
        gradings=gradings,
        grading=grading,
        waiting_time=waiting_time,
        oldest_queued_s=oldest_s,
        refused=refused,
        queue_cap=web.settings.queue_cap,
    )


def families(s: Snapshot) -> Iterator[Metric]:
    """The snapshot as Prometheus metric families."""
    jobs = GaugeMetricFamily(
        "grader_queue_jobs", "Jobs in each RQ queue, waiting or running.", labels=["queue", "state"]
    )
    for name in sorted(s.waiting):
        jobs.add_metric([name, "waiting"], s.waiting[name])
        jobs.add_metric([name, "running"], s.running.get(name, 0))
    yield jobs

    workers = GaugeMetricFamily(
        "grader_workers_alive", "RQ workers alive, per queue they serve.", labels=["queue"]
    )
    for name in sorted(s.workers):
        workers.add_metric([name], s.workers[name])
    yield workers

    states = GaugeMetricFamily(
        "grader_submissions", "Submissions in the database, per state, now.", labels=["state"]
    )
    for state in sorted({"queued", "running", "done", "system_error", *s.states}):
        states.add_metric([state], s.states.get(state, 0))
    yield states

    gradings = CounterMetricFamily(
        "grader_gradings",
        "Submissions graded, per verdict status; system_error counts those the grader gave up on.",
        labels=["status"],
    )
    for status in sorted({"system_error", *s.gradings}):
        gradings.add_metric([status], s.gradings.get(status, 0))
    yield gradings

    for name, doc, h in (
        ("grader_grading_duration_seconds", "Time a worker spent grading a submission.", s.grading),
        (
            "grader_wait_duration_seconds",
            "Time from a submission's creation to the start of the attempt that graded it.",
            s.waiting_time,
        ),
    ):
        buckets = [(_le(b), n) for b, n in zip(BUCKETS_S, h.cumulative, strict=True)]
        buckets.append(("+Inf", h.count))
        yield HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.total)

    yield GaugeMetricFamily(
        "grader_oldest_queued_age_seconds",
        "Age of the oldest queued submission (0 when none is queued).",
        value=s.oldest_queued_s,
    )
    yield GaugeMetricFamily(
        "grader_queue_cap",
        "Queued submissions beyond which new ones are refused (GRADER_QUEUE_CAP; 0: no cap).",
        value=s.queue_cap,
    )
    refused = CounterMetricFamily(
        "grader_submissions_refused",
        "Submissions refused before queueing: queue_cap (the grader was full, 503) or "
        "per_user_limit (the learner had too many waiting, 429).",
        labels=["reason"],
    )
    for reason in sorted(s.refused):
        refused.add_metric([reason], s.refused[reason])
    yield refused


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"


class _Fixed(Collector):
    """A collector of families computed already (so a failure is seen before any is written)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def exposition(s: Snapshot) -> bytes:
    """The snapshot in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families(s)))
    return generate_latest(registry)


# --- back-pressure -----------------------------------------------------------------------------


def count_refusal(redis: Redis, reason: str) -> None:
    """Count a refused submission, shared by every web process (the caller ignores Redis errors:
    a refusal is still a refusal when it cannot be counted)."""
    redis.hincrby(REFUSED_KEY, reason, 1)


def queued_now(session: Session) -> int:
    """Submissions queued now, all learners together (the (state, lease) index serves it)."""
    return (
        session.scalar(select(func.count()).select_from(Submission).where(Submission.state == "queued")) or 0
    )


def median_grading_s(session: Session) -> float | None:
    """The median grading time of the latest gradings, or None before any."""
    times = [
        t
        for t in session.scalars(
            select(Submission.grading_s)
            .where(Submission.grading_s.is_not(None))
            .order_by(Submission.finished_at.desc())
            .limit(RECENT_GRADINGS)
        )
        if t is not None
    ]
    return statistics.median(times) if times else None


def retry_after_s(depth: int, median_s: float | None, workers: int) -> int:
    """Seconds until the queue has likely moved enough to take one more: `depth` submissions,
    each graded in about `median_s`, by `workers` in parallel; clamped to `RETRY_AFTER_S` (no
    worker at all: the longest)."""
    low, high = RETRY_AFTER_S
    if workers <= 0:
        return high
    estimate = depth * (median_s if median_s is not None else DEFAULT_GRADING_S) / workers
    return int(min(max(math.ceil(estimate), low), high))


def at_capacity_message(depth: int, retry_s: int) -> str:
    minutes = max(math.ceil(retry_s / 60), 1)
    return (
        f"the grader is at capacity: {depth} submissions are waiting; "
        f"try again in about {minutes} minute{'s' if minutes != 1 else ''}; your file was not submitted"
    )


def grading_workers(redis: Redis) -> int:
    """Workers alive that grade submissions (one serving both cpu and gpu counts once; those of
    the lti queue only post grades)."""
    from rq import Worker

    return sum(1 for w in Worker.all(connection=redis) if set(w.queue_names()) & set(QUEUES))
