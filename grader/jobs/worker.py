"""The worker: takes `{submission_id, attempt}` jobs from a queue and grades them.

It runs RQ's non-forking worker: grading already happens in a fresh sandbox process, so forking
the worker per job would only add a copy of a torch-loaded process. Each job claims its attempt
in the database first (a duplicate delivery stops there), renews its lease while it grades,
writes the verdict only if the attempt is still its own, and gives the attempt back for a retry
when the grader (not the student's code) failed. A reconciler thread in every worker re-enqueues
submissions whose worker died and queued submissions whose job Redis lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer
from rq.worker.base import BaseWorker
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from grader import fingerprint
from grader.catalog import Catalog, CatalogError, Exercise, load_catalog
from grader.events import Event, EventKind
from grader.jobs import LTI_QUEUE, packages, submissions
from grader.jobs import queue as jobqueue
from grader.library import Library
from grader.lti import outbox
from grader.pool import WarmPool
from grader.settings import Settings, get_settings
from grader.store import ExercisePackage, PackageState, make_engine, require_current, sessions
from sandbox import Sandbox, select_backend

log = logging.getLogger("grader.worker")


@dataclass
class WorkerContext:
    settings: Settings
    factory: sessionmaker[Session]
    redis: Redis
    backend: Sandbox
    catalog: Catalog
    device: str = "cpu"
    pool: WarmPool | None = None
    library: Library | None = None
    pid: int = field(default_factory=os.getpid)
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")

    def __post_init__(self) -> None:
        if self.library is None:
            self.library = Library(self.catalog, self.settings.data_dir)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, device: str = "cpu", backend: Sandbox | None = None
    ) -> WorkerContext:
        """A worker configured by `settings`; its sandbox is `backend`, else the configured one,
        which may never be `none` (a worker grades students' code)."""
        engine = make_engine(settings.database())
        require_current(engine)
        if backend is None:
            backend = select_backend(settings.sandbox, untrusted=True, fork=settings.fork_runners)
        return cls(
            settings=settings,
            factory=sessions(engine),
            redis=jobqueue.connect(settings.redis_url),
            backend=backend,
            catalog=load_catalog(settings.exercises_dir, settings.solutions_dir, strict=False),
            device=device,
        )


_context: WorkerContext | None = None


def context() -> WorkerContext:
    global _context
    if _context is None:  # a job run by a plain `rq worker`: configure from the environment
        _context = WorkerContext.from_settings(get_settings())
    return _context


def grade_job(submission_id: int, attempt: int) -> str:
    """The RQ job. Returns what happened, for RQ's record; the verdict goes to the database."""
    ctx = context()
    if ctx.pid != os.getpid():  # a forked child: never share the parent's database connections
        ctx.factory.kw["bind"].dispose(close=False)
        ctx.pid = os.getpid()
    return grade_attempt(ctx, submission_id, attempt)


def validate_job(package_id: int, job_id: str) -> str:
    """The RQ job that validates an uploaded exercise package, then, when every check holds,
    calibrates its speed checks on this worker (`grader.calibrate`); the report goes to the
    database and progress to the channel `grader:progress:package-<id>`."""
    from grader.validate import Check, validate_cached

    ctx = context()
    if not packages.claim(ctx.factory, package_id, job_id):
        return "skipped"
    with ctx.factory() as session:
        row = session.get(ExercisePackage, package_id)
        assert row is not None
        origin, slug, version = row.origin, row.slug, row.version
    key = packages.channel_key(package_id)
    now = packages.progress_key(package_id)  # the check running now, for pages opened meanwhile
    position = {"current": 0, "total": 0}

    def publish(event: Event) -> None:
        with contextlib.suppress(RedisError):
            if event.kind is EventKind.DONE:
                ctx.redis.delete(now)
            ctx.redis.publish(jobqueue.PROGRESS_PREFIX + key, event.to_json(package=package_id))

    def running(event: Event) -> None:
        """What the worker does now: kept for pages opened meanwhile, and published."""
        with contextlib.suppress(RedisError):
            ctx.redis.set(now, event.to_json(package=package_id), ex=packages.PROGRESS_TTL_S)
        publish(event)

    def on_start(subject: str, current: int, total: int) -> None:
        position.update(current=current, total=total)
        message = f"checking {subject} ({current} of {total})"
        running(Event(EventKind.CHECK, message, current, total, subject=subject))

    def on_check(check: Check) -> None:
        current, total = position["current"], position["total"]
        publish(Event(EventKind.CHECK, "", current, total, subject=check.subject, ok=check.ok, got=check.got))

    publish(Event(EventKind.RUNNING))
    try:
        assert ctx.library is not None
        if origin == "upload":  # this host's copy, or the database's archive
            stored = ctx.library.stored(slug, version, ctx.factory)
            if stored is None:
                raise LookupError(
                    f"the files of {slug} {version} are in neither this host's library nor the database"
                )
            exercise = stored
        else:
            exercise = ctx.library.exercise_at(ctx.factory, slug, version)
        checks = validate_cached(
            exercise, ctx.backend, ctx.settings.validation_cache, on_check=on_check, on_start=on_start
        )
    except Exception as exc:  # noqa: BLE001 - reported on the package, never lost
        log.exception("package %s: validation failed to run", package_id)
        packages.finish(
            ctx.factory, package_id, PackageState.ERROR, {"checks": []}, f"{type(exc).__name__}: {exc}"
        )
        publish(Event(EventKind.DONE, status="error"))
        return "error"
    ok = all(c.ok for c in checks)
    report: dict[str, Any] = {"checks": [dataclasses.asdict(c) for c in checks]}
    if ok:

        def calibrating(subject: str, current: int, total: int) -> None:
            message = f"calibrating the speed checks: measuring {subject} ({current} of {total})"
            running(Event(EventKind.STAGE, message, current, total, subject=subject))

        report["calibration"] = _calibration(ctx, exercise, calibrating)
    failed = [c.subject for c in checks if not c.ok]
    message = "all checks hold" if ok else "failed: " + ", ".join(failed)
    state = PackageState.VALID if ok else PackageState.INVALID
    packages.finish(ctx.factory, package_id, state, report, message)
    publish(Event(EventKind.DONE, status=str(state)))
    return str(state)


def _calibration(
    ctx: WorkerContext, exercise: Exercise, on_subject: Callable[[str, int, int], None]
) -> dict[str, Any] | None:
    """Where the speed checks' thresholds belong on this worker (`grader.calibrate`), for the
    package's page; None for an exercise without a time check. Never fails the validation."""
    from grader.calibrate import NotCalibratable, calibrate

    try:
        return calibrate(exercise, ctx.backend, on_subject=on_subject).to_dict()
    except NotCalibratable:
        return None
    except Exception as exc:  # noqa: BLE001 - the validation holds whatever calibration does
        log.exception("%s: calibration failed to run", exercise.slug)
        return {"error": f"{type(exc).__name__}: {exc}"}


def grade_attempt(ctx: WorkerContext, submission_id: int, attempt: int) -> str:
    settings = ctx.settings
    if not submissions.claim(ctx.factory, submission_id, attempt, ctx.name, settings.lease_s):
        log.info(
            "submission %s attempt %s: not ours to grade (duplicate or superseded)", submission_id, attempt
        )
        return "skipped"
    jobqueue.publish(ctx.redis, submission_id, Event(EventKind.RUNNING, attempt=attempt))
    lease = Lease(ctx, submission_id, attempt)
    lease.start()
    try:
        outcome = _grade(ctx, submission_id, attempt)
    except Exception as exc:  # noqa: BLE001 - any failure of ours: the attempt goes back
        log.exception("submission %s attempt %s: the grader failed", submission_id, attempt)
        outcome = _give_back(ctx, submission_id, attempt, f"{type(exc).__name__}: {exc}")
    finally:
        lease.stop()
    return outcome


def _grade(ctx: WorkerContext, submission_id: int, attempt: int) -> str:
    from grader.engine import grade

    row = submissions.get(ctx.factory, submission_id)
    assert row is not None  # claimed a moment ago
    slug = row.exercise_version.slug
    assert ctx.library is not None
    try:
        exercise = ctx.library.exercise_at(ctx.factory, slug, row.exercise_version.version)
    except (CatalogError, KeyError) as exc:
        return _give_back(
            ctx, submission_id, attempt, f"exercise {slug!r} cannot be graded: {exc}", final=True
        )

    def progress(event: Event) -> None:
        if event.kind is EventKind.DONE:  # announced once the verdict is in the database, not before
            return
        jobqueue.publish(ctx.redis, submission_id, event)

    started = time.monotonic()
    public_only = row.kind == "public"
    verdict = grade(
        exercise,
        row.source,
        ctx.backend,
        public_only=public_only,
        measure=not public_only,
        device=ctx.device,
        events=progress,
        filename=row.filename,
        pool=ctx.pool,
    )
    if verdict.status == "system_error":
        return _give_back(ctx, submission_id, attempt, verdict.message)
    if submissions.finish(ctx.factory, submission_id, attempt, ctx.name, verdict.model_dump(mode="json")):
        jobqueue.publish(ctx.redis, submission_id, Event(EventKind.DONE, status=str(verdict.status)))
        outbox.enqueue_for(ctx.factory, ctx.redis, submission_id)  # its grades for learning platforms
        log.info(
            "submission %s attempt %s: %s in %.1f s",
            submission_id,
            attempt,
            verdict.status,
            time.monotonic() - started,
        )
        return str(verdict.status)
    log.warning(
        "submission %s attempt %s: lease lost before the verdict; not written", submission_id, attempt
    )
    return "superseded"


def _give_back(
    ctx: WorkerContext, submission_id: int, attempt: int, message: str, *, final: bool = False
) -> str:
    retry = submissions.release(
        ctx.factory,
        submission_id,
        attempt,
        ctx.name,
        message=message,
        max_attempts=attempt if final else ctx.settings.max_attempts,
    )
    if retry is None:
        return "superseded"
    follow_up(ctx, retry)
    return "system_error" if retry.gave_up else "retried"


def follow_up(ctx: WorkerContext, retry: submissions.Retry) -> None:
    """Enqueue the next attempt, or announce that the submission was given up."""
    if retry.gave_up or retry.job_id is None:
        jobqueue.publish(ctx.redis, retry.submission_id, Event(EventKind.DONE, status="system_error"))
        return
    try:
        jobqueue.enqueue(ctx.redis, retry.queue, retry.submission_id, retry.attempt, retry.job_id)
    except RedisError:  # the reconciler enqueues it once Redis is back
        log.warning("submission %s: Redis unavailable; left for the reconciler", retry.submission_id)


class Lease(threading.Thread):
    """Renews the lease of one attempt every third of its length until stopped."""

    def __init__(self, ctx: WorkerContext, submission_id: int, attempt: int) -> None:
        super().__init__(name=f"lease-{submission_id}", daemon=True)
        self.ctx, self.submission_id, self.attempt = ctx, submission_id, attempt
        self.stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        every = self.ctx.settings.lease_s / 3
        while not self.stopped.wait(every):
            try:
                if not submissions.renew(
                    self.ctx.factory,
                    self.submission_id,
                    self.attempt,
                    self.ctx.name,
                    self.ctx.settings.lease_s,
                ):
                    self.lost = True
                    return
            except SQLAlchemyError as exc:  # the database is down: try again next time
                log.warning("lease of submission %s not renewed: %s", self.submission_id, exc)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def reconcile(ctx: WorkerContext) -> dict[str, int]:
    """One pass: take back expired leases, re-enqueue queued submissions whose job is gone."""
    counts = {"expired": 0, "gave_up": 0, "requeued": 0}
    for retry in submissions.expire_leases(ctx.factory, ctx.settings.max_attempts):
        counts["gave_up" if retry.gave_up else "expired"] += 1
        log.warning(
            "submission %s: lease expired; %s",
            retry.submission_id,
            "given up" if retry.gave_up else f"attempt {retry.attempt} queued",
        )
        follow_up(ctx, retry)
    # A just-created submission is committed before it is enqueued: leave it a moment.
    grace = ctx.settings.requeue_after_s
    for submission_id, attempt, name, job_id in submissions.queued(ctx.factory, older_than_s=grace):
        if job_id and jobqueue.job_alive(ctx.redis, job_id):
            continue
        new_id = submissions.replace_job(ctx.factory, submission_id, attempt, job_id)
        if new_id is not None:
            jobqueue.enqueue(ctx.redis, name, submission_id, attempt, new_id)
            counts["requeued"] += 1
            log.warning("submission %s: its job was lost; enqueued again", submission_id)
    for package_id in packages.lost(ctx.factory, older_than_s=grace):
        with ctx.factory() as session:
            row = session.get(ExercisePackage, package_id)
            waiting = row.job_id if row is not None else None
        if waiting and jobqueue.job_alive(ctx.redis, waiting):
            continue
        package_job = packages.requeue(ctx.factory, package_id)
        if package_job is not None:
            jobqueue.enqueue_validation(ctx.redis, package_id, package_job)
            counts["requeued"] += 1
            log.warning("exercise package %s: its validation job was lost; enqueued again", package_id)
    counts["lti"] = outbox.reconcile(ctx.factory, ctx.redis, grace_s=grace)  # due or lost grade pushes
    return counts


class Reconciler(threading.Thread):
    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(name="reconciler", daemon=True)
        self.ctx = ctx
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.ctx.settings.reconcile_every_s):
            heartbeat(self.ctx)
            try:
                reconcile(self.ctx)
            except (RedisError, SQLAlchemyError, jobqueue.QueueError) as exc:
                log.warning("reconciliation skipped: %s", exc)


def heartbeat(ctx: WorkerContext) -> None:
    """Publish what this worker's host is made of (`grader.fingerprint`), for the queue page;
    it expires on its own when the worker stops renewing it."""
    backend = ctx.backend
    mine = fingerprint.of_host(backend.name, backend.image, backend.image_digest, ctx.device)
    ttl = int(max(60.0, 3 * ctx.settings.reconcile_every_s))
    try:
        fingerprint.publish(ctx.redis, ctx.name, mine, ttl)
    except RedisError as exc:
        log.warning("heartbeat skipped: %s", exc)


def warm_up(ctx: WorkerContext) -> None:
    """Do now what the first grading would otherwise wait for: import torch, pytest, the harness
    and every reference solution, and run torch's lazily imported paths once."""
    import pytest  # noqa: F401
    import torch

    import grader.engine  # noqa: F401
    from grader.harness.session import GradingSession
    from grader.testing import assert_close

    value = torch.ones(2, 3)
    assert_close(value * 1.0, value)
    for slug in ctx.catalog.exercises:
        with contextlib.suppress(Exception):  # a broken reference is reported when graded
            GradingSession(ctx.catalog.get(slug), "", ctx.backend, seed=0).reference()


CONTROL_POLL_S = 1.0


def _listen_briefly(worker: BaseWorker) -> None:
    """RQ reads its control channel (commands sent to a worker) in a thread that waits up to 60 s
    at a time for a message, or for the subscription to come back once unsubscribed, and
    redis-py stops that thread by waiting for it: a worker stopping in the wrong instant took a
    minute to exit. Ours waits at most `CONTROL_POLL_S` at a time."""
    worker.pubsub = worker.connection.pubsub()
    worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
    worker.pubsub_thread = worker.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ types it None
        sleep_time=CONTROL_POLL_S, daemon=True, exception_handler=worker._pubsub_exception_handler
    )


class GradingWorker(SimpleWorker):
    """RQ's worker loop in this process (the jobs share the warm pool)."""

    def subscribe(self) -> None:
        _listen_briefly(self)


class ForkingWorker(Worker):
    """RQ's default worker, each job in a forked child (for comparison only)."""

    def subscribe(self) -> None:
        _listen_briefly(self)


def served_queues(queue_names: list[str]) -> list[str]:
    """The queues a worker takes jobs from: those named, and a cpu worker also sends grades to
    learning platforms (`lti`) when no grading waits."""
    if "cpu" in queue_names and LTI_QUEUE not in queue_names:
        return [*queue_names, LTI_QUEUE]
    return list(queue_names)


def run(ctx: WorkerContext, queue_names: list[str], *, burst: bool = False, fork: bool = False) -> None:
    """Work until stopped (SIGINT/SIGTERM finish the current job first), or until the queues
    are empty with `burst`. `fork` runs each job in a forked child (RQ's default worker), for
    comparison only: threads do not survive a fork, so it runs without a warm pool."""
    global _context
    _context = ctx
    # Until RQ takes the signals over (in `work`), SIGINT and SIGTERM stop the start at once, and
    # what it had started is closed below: no job is taken yet, so none is lost.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _stop_starting)
    reconciler: Reconciler | None = None
    try:
        if fork and ctx.backend.start_method == "fork":  # a fork server's threads would not survive
            ctx.backend.close()
            ctx.backend = select_backend(ctx.settings.sandbox, untrusted=True)
        warm_up(ctx)
        if ctx.settings.pool_size > 0 and ctx.pool is None and not fork:
            ctx.pool = WarmPool(ctx.backend, size=ctx.settings.pool_size, keys=ctx.settings.pool_keys)
        heartbeat(ctx)
        reconciler = Reconciler(ctx)
        reconciler.start()
        worker_class = ForkingWorker if fork else GradingWorker
        worker = worker_class(
            [jobqueue.queue(ctx.redis, name) for name in served_queues(queue_names)],
            connection=ctx.redis,
            serializer=JSONSerializer,
            name=ctx.name,
        )
        worker.work(burst=burst, logging_level="WARNING", with_scheduler=False)
    except StopStarting:
        log.info("stopped while starting")
    finally:
        if reconciler is not None:
            reconciler.stopped.set()
        with contextlib.suppress(RedisError):
            ctx.redis.delete(fingerprint.KEY_PREFIX + ctx.name)
        if ctx.pool is not None:
            ctx.pool.close()
        ctx.backend.close()


class StopStarting(BaseException):  # not an error: no `except Exception` may keep it
    """A stop signal that came before the worker took any job (a BaseException, as
    KeyboardInterrupt is, so that no `except Exception` on the way keeps the worker starting)."""


def _stop_starting(signum: int, frame: object) -> None:
    raise StopStarting(signal.Signals(signum).name)


@contextlib.contextmanager
def device_claim(ctx: WorkerContext, gpu: int | None) -> Iterator[None]:
    """One GPU worker per device: hold a Redis key for the device while working (renewed; it
    expires on its own if this worker dies)."""
    if gpu is None:
        yield
        return
    key = f"grader:gpu-worker:{socket.gethostname()}:{gpu}"
    if not ctx.redis.set(key, ctx.name, nx=True, ex=30):
        holder = ctx.redis.get(key)
        raise jobqueue.QueueError(
            f"GPU {gpu} already has a worker ({holder.decode() if isinstance(holder, bytes) else holder})"
        )
    stopped = threading.Event()

    def renew() -> None:
        while not stopped.wait(10):
            with contextlib.suppress(RedisError):
                ctx.redis.set(key, ctx.name, xx=True, ex=30)

    thread = threading.Thread(target=renew, name="device-claim", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        with contextlib.suppress(RedisError):
            if ctx.redis.get(key) == ctx.name.encode():
                ctx.redis.delete(key)
