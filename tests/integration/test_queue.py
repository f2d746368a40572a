"""Grading through the queue with a real Redis, real `grader worker` processes and bubblewrap,
on SQLite and PostgreSQL: the CLI contract, progress events, and the faults a queue must
survive (a worker killed mid-grading, Redis restarted, a duplicate delivery, a submission that
brings its worker down every time). Each ends with exactly one verdict per submission and no
stray process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from grader.jobs import queue as jobqueue
from grader.store import Submission, make_engine, sessions, transaction
from tests.services import RedisServer, queue_env, sandbox_strays

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

GRADER = str(Path(sys.executable).with_name("grader"))
GOOD = "def row_sums(rows):\n    return [sum(r) for r in rows]\n"
WRONG = "def row_sums(rows):\n    return [r[0] if r else 0.0 for r in rows]\n"
SLOW = "import time\n\ndef row_sums(rows):\n    time.sleep(1.5)\n    return [sum(r) for r in rows]\n"


@pytest.fixture
def env(database_url: str, redis_url: str) -> dict[str, str]:
    environment = queue_env(
        database_url,
        redis_url,
        # short, so that a killed worker's submission comes back soon; renewed every 2 s, long
        # enough that a starved renewer on a busy host does not lose a live grading
        GRADER_LEASE_S="6",
        GRADER_RECONCILE_EVERY_S="0.5",
        GRADER_REQUEUE_AFTER_S="1",
        GRADER_MAX_ATTEMPTS="3",
    )
    cli(environment, "db", "upgrade")
    return environment


@pytest.fixture
def db(database_url: str) -> Iterator[Callable[[], list[Submission]]]:
    engine = make_engine(database_url)
    factory = sessions(engine)

    def rows() -> list[Submission]:
        with factory() as session:
            found = list(session.scalars(select(Submission).order_by(Submission.id)))
            for row in found:
                row.attempts  # noqa: B018 - loaded for use after the session
            return found

    yield rows
    engine.dispose()


def cli(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([GRADER, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"grader {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def enqueue(env: dict[str, str], tmp_path: Path, source: str, name: str = "rows.py") -> int:
    path = tmp_path / name
    path.write_text(source)
    return int(cli(env, "enqueue", "quick-sum", str(path)).stdout.split()[-1])


class Workers:
    """`grader worker` processes started by a test, all stopped at its end."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env, self.tmp_path, self.started = env, tmp_path, []  # type: ignore[var-annotated]

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.tmp_path / f"worker-{len(self.started)}.log").open("wb") as log:
            process = subprocess.Popen([GRADER, "worker", *args], env=self.env, stdout=log, stderr=log)
        self.started.append(process)
        return process

    def log(self, index: int) -> str:
        return (self.tmp_path / f"worker-{index}.log").read_text()

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(env, tmp_path)
    yield pool
    pool.stop_all()
    for process in pool.started:  # its sandboxes die with it, within moments
        gone = lambda pid=process.pid: sandbox_strays(pid) == []  # noqa: E731
        wait_for(gone, "a killed worker's sandbox processes to die", timeout=10)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def all_final(db: Callable[[], list[Submission]], count: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = db()
        return len(rows) == count and all(row.state in ("done", "system_error") for row in rows)

    return check


def test_enqueue_then_status_wait_gives_the_verdict(
    env: dict[str, str], tmp_path: Path, workers: Workers
) -> None:
    good, wrong = enqueue(env, tmp_path, GOOD), enqueue(env, tmp_path, WRONG, "wrong.py")
    waiting = json.loads(cli(env, "status", str(good), "--json").stdout)
    assert waiting == {"submission": good, "status": "queued", "attempt": 1, "position": 0}
    workers.start()
    verdict = json.loads(cli(env, "status", str(good), "--wait", "--json", "--timeout", "90").stdout)
    assert verdict["status"] == "passed" and verdict["submission"] == good
    assert verdict["provenance"]["exercise"] == "quick-sum" and verdict["provenance"]["sandbox"] == "bwrap"
    verdict = json.loads(cli(env, "status", str(wrong), "--wait", "--json", "--timeout", "90").stdout)
    assert verdict["status"] == "failed"
    assert "Failed" in cli(env, "status", str(wrong)).stdout
    assert verdict["provenance"]["host"] == socket.gethostname() and verdict["provenance"]["runtime_digest"]


def test_a_verdicts_receipt_replays_to_the_same_outcome(
    env: dict[str, str], tmp_path: Path, workers: Workers, database_url: str
) -> None:
    good, wrong = enqueue(env, tmp_path, GOOD), enqueue(env, tmp_path, WRONG, "wrong.py")
    workers.start()
    for submission in (good, wrong):
        cli(env, "status", str(submission), "--wait", "--timeout", "90")
    replayed = json.loads(cli(env, "replay", str(good), "--json").stdout)
    assert replayed["agrees"] is True and replayed["replayed"]["status"] == "passed"
    assert replayed["replayed"]["provenance"]["seed"] == replayed["recorded"]["provenance"]["seed"]
    assert (
        replayed["host_differences"] == []
        and replayed["recorded"]["provenance"]["host"] == socket.gethostname()
    )
    same = cli(env, "replay", str(wrong))
    assert "recorded: failed" in same.stdout and "the same outcome" in same.stdout
    # a receipt that no longer matches what grading gives is reported, with a failing exit
    engine = make_engine(database_url)
    factory = sessions(engine)
    with transaction(factory) as session:
        row = session.get(Submission, wrong)
        assert row is not None and row.verdict is not None
        row.verdict = {**row.verdict, "status": "passed"}
    differs = cli(env, "replay", str(wrong), check=False)
    assert differs.returncode == 1 and "a different outcome" in differs.stdout, differs.stdout
    with transaction(factory) as session:
        row = session.get(Submission, good)
        assert row is not None
        row.source = row.source + b"\n"
    engine.dispose()
    altered = cli(env, "replay", str(good), check=False)
    assert altered.returncode == 2 and "stored source is not the one its verdict names" in altered.stderr
    missing = cli(env, "replay", "999999", check=False)
    assert missing.returncode == 2 and "no submission 999999" in missing.stderr


# what these check happens in Redis and the CLI, the same whichever database holds the rows
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_progress_is_published(env: dict[str, str], tmp_path: Path, workers: Workers, redis_url: str) -> None:
    pubsub = Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(jobqueue.PROGRESS_PREFIX + "*")
    submission = enqueue(env, tmp_path, GOOD)
    workers.start()
    events: list[dict[str, object]] = []
    deadline = time.monotonic() + 90
    while not events or events[-1]["kind"] != "done":
        assert time.monotonic() < deadline, f"no 'done' event; got {events}"
        message = pubsub.get_message(timeout=1)
        if message is not None:
            events.append(json.loads(message["data"]))
    pubsub.close()
    kinds = [event["kind"] for event in events]
    assert kinds[0] == "queued" and "running" in kinds and kinds[-1] == "done"
    assert {"submission": submission, "kind": "done", "status": "passed"} == events[-1]
    tests = [event for event in events if event["kind"] == "test"]
    assert [(e["current"], e["total"]) for e in tests] == [(1, 3)]  # the one public test
    # the two hidden tests are one step: when each began would time them one by one
    hidden = [e for e in events if e["kind"] == "stage" and e.get("message") == "running the hidden tests"]
    assert len(hidden) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_status_errors_are_clear(env: dict[str, str], tmp_path: Path) -> None:
    missing = cli(env, "status", "999", check=False)
    assert missing.returncode == 2 and "no submission 999" in missing.stderr
    unknown = cli(env, "enqueue", "no-such-exercise", str(tmp_path / "x.py"), check=False)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    refused = cli(env, "worker", "--sandbox", "none", check=False)
    assert refused.returncode == 2 and "refused" in refused.stderr
    no_gpu = cli(env, "worker", "--queue", "gpu", check=False)
    assert no_gpu.returncode == 2 and "--gpu INDEX" in no_gpu.stderr
    down = cli({**env, "REDIS_URL": f"unix://{tmp_path}/none.sock"}, "status", "1", "--wait", check=False)
    assert down.returncode in (1, 2) and "Traceback" not in down.stderr
    (tmp_path / "rows.py").write_text(GOOD)
    no_redis = cli(
        {**env, "REDIS_URL": f"unix://{tmp_path}/none.sock"},
        "enqueue",
        "quick-sum",
        str(tmp_path / "rows.py"),
        check=False,
    )
    assert no_redis.returncode == 1 and "cannot reach Redis" in no_redis.stderr
    empty_db = {**env, "DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    not_upgraded = cli(empty_db, "enqueue", "quick-sum", str(tmp_path / "rows.py"), check=False)
    assert not_upgraded.returncode == 1 and "grader db upgrade" in not_upgraded.stderr


def test_a_duplicate_delivery_grades_once(
    env: dict[str, str], tmp_path: Path, workers: Workers, redis_url: str, db: Callable[[], list[Submission]]
) -> None:
    submission = enqueue(env, tmp_path, GOOD)
    # the same attempt delivered a second time, as a redelivery after a network split would
    jobqueue.enqueue(Redis.from_url(redis_url), "cpu", submission, 1, "duplicate-delivery")
    worker = workers.start("--burst")
    assert worker.wait(timeout=120) == 0
    [row] = db()
    assert (row.state, row.status, row.attempt) == ("done", "passed", 1)
    assert [(a.number, a.outcome) for a in row.attempts] == [(1, "passed")]
    assert "not ours to grade" in workers.log(0)


def test_a_worker_killed_mid_grading_loses_nothing(
    env: dict[str, str], tmp_path: Path, workers: Workers, db: Callable[[], list[Submission]]
) -> None:
    slow, good = enqueue(env, tmp_path, SLOW), enqueue(env, tmp_path, GOOD, "good.py")
    first = workers.start()
    wait_for(lambda: db()[0].state == "running", "the first worker to start grading")
    time.sleep(0.5)  # inside the sandbox by now
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    wait_for(
        lambda: sandbox_strays(first.pid) == [], "the killed worker's sandbox to die with it", timeout=10
    )
    workers.start()
    wait_for(all_final(db, 2), "both submissions to be graded", timeout=120)
    rows = {row.id: row for row in db()}
    assert (rows[slow].state, rows[slow].status, rows[slow].attempt) == ("done", "passed", 2)
    assert [(a.number, a.outcome) for a in rows[slow].attempts] == [(1, "lost"), (2, "passed")]
    assert rows[good].status == "passed" and len(rows[good].attempts) == 1


# Redis's failures are the same whatever the database: these run on PostgreSQL (production's) only
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_redis_restarted_with_jobs_queued_loses_nothing(
    env: dict[str, str],
    tmp_path: Path,
    workers: Workers,
    redis_server: RedisServer,
    db: Callable[[], list[Submission]],
) -> None:
    ids = [enqueue(env, tmp_path, GOOD, f"s{i}.py") for i in range(3)]
    redis_server.restart()  # no persistence: the three jobs are gone
    assert Redis.from_url(redis_server.url).dbsize() == 0
    workers.start()
    wait_for(all_final(db, 3), "the lost jobs to be enqueued again and graded", timeout=120)
    rows = db()
    assert [row.id for row in rows] == ids
    assert all(row.status == "passed" and [a.number for a in row.attempts] == [1] for row in rows)


# Redis's failures are the same whatever the database: these run on PostgreSQL (production's) only
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_redis_restarted_under_a_running_worker(
    env: dict[str, str],
    tmp_path: Path,
    workers: Workers,
    redis_server: RedisServer,
    db: Callable[[], list[Submission]],
) -> None:
    workers.start()
    first = enqueue(env, tmp_path, SLOW)
    wait_for(lambda: db()[0].state == "running", "grading to start")
    redis_server.restart()
    later = enqueue(env, tmp_path, GOOD, "later.py")
    wait_for(all_final(db, 2), "both submissions to be graded after the restart", timeout=120)
    rows = {row.id: row for row in db()}
    assert rows[first].status == "passed" and rows[later].status == "passed"
    assert sum(len(row.attempts) for row in rows.values()) == 2


# counting lost attempts is the same compare-and-set on both databases (test_store runs it on
# each): this slow test runs on the embedded default only
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_submission_that_kills_every_worker_ends_in_system_error(
    env: dict[str, str], tmp_path: Path, workers: Workers, db: Callable[[], list[Submission]]
) -> None:
    """The sandbox keeps a submission from killing its worker; this stands in for whatever might
    still do it (a grader bug it triggers): each worker that takes it is killed at once."""
    poison, good = enqueue(env, tmp_path, SLOW), enqueue(env, tmp_path, GOOD, "good.py")
    killed, last = 0, 0
    worker = workers.start()
    deadline = time.monotonic() + 120
    while not all_final(db, 2)():
        assert time.monotonic() < deadline, "the poison submission was never given up"
        row = next(r for r in db() if r.id == poison)
        if row.state == "running" and row.attempt > last:  # a new attempt has started
            last = row.attempt
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            killed += 1
            worker = workers.start()
        time.sleep(0.1)
    rows = {row.id: row for row in db()}
    assert killed == 3
    assert (rows[poison].state, rows[poison].status) == ("system_error", "system_error")
    assert rows[poison].message is not None and "failed this submission 3 times" in rows[poison].message
    assert [a.outcome for a in rows[poison].attempts] == ["lost", "lost", "lost"]
    assert rows[good].status == "passed"
    shown = json.loads(cli(env, "status", str(poison), "--json").stdout)
    assert shown["status"] == "system_error" and "3 times" in shown["message"]


def test_one_worker_per_gpu(redis_url: str) -> None:
    from types import SimpleNamespace

    from grader.jobs.worker import device_claim

    first = SimpleNamespace(name="worker-a", redis=Redis.from_url(redis_url))
    second = SimpleNamespace(name="worker-b", redis=Redis.from_url(redis_url))
    with device_claim(first, 0):  # type: ignore[arg-type]
        with pytest.raises(jobqueue.QueueError, match="GPU 0 already has a worker \\(worker-a\\)"):
            with device_claim(second, 0):  # type: ignore[arg-type]
                pass
        with device_claim(second, 1):  # type: ignore[arg-type]
            pass  # another device is free
    with device_claim(second, 0):  # type: ignore[arg-type]
        pass  # released when the first worker stopped


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_stopped_while_it_starts_exits_cleanly(
    env: dict[str, str], workers: Workers, tmp_path: Path
) -> None:
    """SIGTERM while it imports torch and starts its fork server (before it takes a job): a clean
    exit, and nothing it had started left behind."""
    process = workers.start()
    wait_for(lambda: "queues cpu" in workers.log(0), "the worker to start", timeout=60)
    process.send_signal(signal.SIGTERM)  # its warm-up (torch, the references) takes seconds more
    assert process.wait(timeout=60) == 0, workers.log(0)
    assert "stopped while starting" in workers.log(0)
    assert sandbox_strays(process.pid) == []


@pytest.mark.parametrize("kind", ["GradingWorker", "ForkingWorker"])
def test_a_worker_stops_without_waiting_on_its_control_channel(redis_url: str, kind: str) -> None:
    """The worst instant to stop: the control thread has read the reply to the unsubscription and
    waits for the subscription to come back. Stopping must not wait out that thread's poll."""
    import rq

    from grader.jobs import worker as grading_worker

    redis = Redis.from_url(redis_url)
    worker = getattr(grading_worker, kind)([rq.Queue("cpu", connection=redis)], connection=redis)
    worker.subscribe()
    worker.pubsub.unsubscribe()
    deadline = time.monotonic() + 10
    while worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.pubsub.subscribed, "the control thread never read the unsubscription"
    time.sleep(0.2)  # now it waits for a subscription
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 2 * grading_worker.CONTROL_POLL_S + 5
    assert not worker.pubsub_thread.is_alive()
