"""/metrics against a known state of the database and Redis, its token, its 503 when Redis is
down; and the global queue cap: a 503 with Retry-After from the API, the refusal on the concept
page from the form, submissions still taken under the cap."""

from __future__ import annotations

import datetime
import re
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from rq import Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from sqlalchemy import update

from grader.jobs import queue as jobqueue
from grader.settings import Settings
from grader.store import ExerciseVersion, Submission, make_engine, sessions, upgrade
from grader.store.models import utcnow
from grader.verdict import Status
from tests.integration.test_concept_page import SLUG, back_on_page, logged_in, paste, shown_error
from tests.integration.web_fixtures import World, add_submission, client, count
from web.app import create_app
from web.services import metrics
from web.services.submissions import MAX_ACTIVE_PER_USER

# text the refusal of a full grader must carry, whatever the numbers
AT_CAPACITY = re.compile(
    r"^the grader is at capacity: (\d+) submissions are waiting; try again in about (\d+) minutes?; "
    r"your file was not submitted$"
)


def scrape(world: World, **headers: str) -> dict[str, list[Sample]]:
    response = client(world.app).get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f.samples for f in text_string_to_metric_families(response.text)}
    return families


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def set_times(world: World, submission_id: int, grading_s: float, queued_s: float) -> None:
    with world.factory() as session:
        session.execute(
            update(Submission)
            .where(Submission.id == submission_id)
            .values(grading_s=grading_s, queued_s=queued_s)
        )
        session.commit()


def test_metrics_report_the_database_and_redis_as_they_are(world: World) -> None:
    # the database: 2 queued (one an hour old), 3 graded, 1 given up
    old = add_submission(world, world.student, SLUG, status=None)
    add_submission(world, world.other, SLUG, status=None)
    with world.factory() as session:
        session.execute(
            update(Submission)
            .where(Submission.id == old)
            .values(created_at=utcnow() - datetime.timedelta(hours=1))
        )
        session.commit()
    for who, status, grading_s, queued_s in (
        (world.student, Status.PASSED, 0.5, 3.0),
        (world.other, Status.FAILED, 45.0, 700.0),
        (world.pro, Status.PASSED, 4000.0, 1.5),
    ):
        set_times(world, add_submission(world, who, SLUG, status=status), grading_s, queued_s)
    lost = add_submission(world, world.pro, SLUG, status=None)
    with world.factory() as session:
        session.execute(update(Submission).where(Submission.id == lost).values(state="system_error"))
        session.commit()
    # Redis: 2 jobs waiting on cpu, 1 running on gpu, 2 cpu workers and 1 serving both
    redis = world.web.redis()
    for n in range(2):
        jobqueue.enqueue(redis, "cpu", 1000 + n, 1, f"job-{n}")
    gpu = jobqueue.queue(redis, "gpu")
    job = Job.create("grader.jobs.worker.grade", args=[2000, 1], connection=redis, id="job-running")
    job.save()
    # as a worker records an execution it started: "<job id>:<execution id>", scored by its expiry
    redis.zadd(StartedJobRegistry(queue=gpu).key, {"job-running:exec-1": time.time() + 600})
    for name, served in (("w1", ["cpu"]), ("w2", ["cpu"]), ("w3", ["cpu", "gpu"])):
        Worker([jobqueue.queue(redis, q) for q in served], connection=redis, name=name).register_birth()
    redis.hincrby(metrics.REFUSED_KEY, "queue_cap", 4)

    f = scrape(world)
    jobs = f["grader_queue_jobs"]
    assert value(jobs, "grader_queue_jobs", queue="cpu", state="waiting") == 2
    assert value(jobs, "grader_queue_jobs", queue="cpu", state="running") == 0
    assert value(jobs, "grader_queue_jobs", queue="gpu", state="waiting") == 0
    assert value(jobs, "grader_queue_jobs", queue="gpu", state="running") == 1
    workers = f["grader_workers_alive"]
    assert value(workers, "grader_workers_alive", queue="cpu") == 3
    assert value(workers, "grader_workers_alive", queue="gpu") == 1
    states = f["grader_submissions"]
    assert value(states, "grader_submissions", state="queued") == 2
    assert value(states, "grader_submissions", state="done") == 3
    assert value(states, "grader_submissions", state="system_error") == 1
    assert value(states, "grader_submissions", state="running") == 0
    gradings = f["grader_gradings"]
    assert value(gradings, "grader_gradings_total", status="passed") == 2
    assert value(gradings, "grader_gradings_total", status="failed") == 1
    assert value(gradings, "grader_gradings_total", status="system_error") == 1
    grading = f["grader_grading_duration_seconds"]
    assert value(grading, "grader_grading_duration_seconds_bucket", le="1.0") == 1
    assert value(grading, "grader_grading_duration_seconds_bucket", le="60.0") == 2
    assert value(grading, "grader_grading_duration_seconds_bucket", le="1800.0") == 2
    assert value(grading, "grader_grading_duration_seconds_bucket", le="+Inf") == 3
    assert value(grading, "grader_grading_duration_seconds_count") == 3
    assert value(grading, "grader_grading_duration_seconds_sum") == 4045.5
    wait = f["grader_wait_duration_seconds"]
    assert value(wait, "grader_wait_duration_seconds_bucket", le="2.0") == 1
    assert value(wait, "grader_wait_duration_seconds_bucket", le="5.0") == 2
    assert value(wait, "grader_wait_duration_seconds_bucket", le="600.0") == 2
    assert value(wait, "grader_wait_duration_seconds_bucket", le="1200.0") == 3
    assert value(wait, "grader_wait_duration_seconds_sum") == 704.5
    oldest = value(f["grader_oldest_queued_age_seconds"], "grader_oldest_queued_age_seconds")
    assert 3600 <= oldest < 3600 + 600
    assert value(f["grader_queue_cap"], "grader_queue_cap") == world.web.settings.queue_cap
    refused = f["grader_submissions_refused"]
    assert value(refused, "grader_submissions_refused_total", reason="queue_cap") == 4
    assert value(refused, "grader_submissions_refused_total", reason="per_user_limit") == 0


def test_every_metric_has_help_and_an_empty_grader_still_reports(world: World) -> None:
    response = client(world.app).get("/metrics")
    assert response.status_code == 200
    names = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {"grader_queue_jobs", "grader_workers_alive", "grader_gradings", "grader_submissions"} <= set(
        names
    )
    for family in names.values():
        assert family.name.startswith("grader_") and family.documentation
    assert value(names["grader_oldest_queued_age_seconds"].samples, "grader_oldest_queued_age_seconds") == 0
    assert (
        value(names["grader_grading_duration_seconds"].samples, "grader_grading_duration_seconds_count") == 0
    )


def test_a_metrics_token_is_required_once_set(world: World) -> None:
    world.web.settings.metrics_token = "scrape-me-0123"
    c = client(world.app)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-me-0123"}):
        refused = c.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "grader_" not in refused.text
    assert "grader_queue_jobs" in scrape(world, Authorization="Bearer scrape-me-0123")


def test_redis_down_during_a_scrape_is_a_503(world: World) -> None:
    settings = Settings(data_dir=world.settings.data_dir, redis_url="redis://127.0.0.1:1/0")
    response = client(create_app(settings)).get("/metrics")
    assert response.status_code == 503
    assert response.text.startswith("metrics unavailable: Redis failed")


def test_a_full_grader_refuses_api_submissions_with_503_and_retry_after(world: World) -> None:
    world.web.settings.queue_cap = 2
    api = client(world.app)
    body = {"exercise": SLUG, "source": "def causal_mask(n_q, n_k):\n    return None\n", "kind": "public"}
    first = api.post("/api/v1/submissions", json=body, headers=world.student.bearer)
    assert first.status_code == 201, first.text  # under the cap: taken
    add_submission(world, world.other, SLUG, status=None)  # the cap is reached, by someone else
    before = count(world, Submission)
    refused = api.post("/api/v1/submissions", json=body, headers=world.pro.bearer)
    assert refused.status_code == 503
    found = AT_CAPACITY.match(refused.json()["detail"])
    assert found is not None, refused.json()
    assert found.group(1) == "2"
    retry = int(refused.headers["retry-after"])
    low, high = metrics.RETRY_AFTER_S
    assert retry == high  # no worker is alive: the longest wait
    assert count(world, Submission) == before
    refusals = scrape(world)["grader_submissions_refused"]
    assert value(refusals, "grader_submissions_refused_total", reason="queue_cap") == 1
    # with no cap, the same submission is taken
    world.web.settings.queue_cap = 0
    assert api.post("/api/v1/submissions", json=body, headers=world.pro.bearer).status_code == 201


def test_the_per_learner_limit_is_counted_as_a_refusal(world: World) -> None:
    for _ in range(MAX_ACTIVE_PER_USER):
        add_submission(world, world.student, SLUG, status=None)
    body = {"exercise": SLUG, "source": "def mine():\n    pass\n", "kind": "public"}
    refused = client(world.app).post("/api/v1/submissions", json=body, headers=world.student.bearer)
    assert refused.status_code == 429 and "retry-after" not in refused.headers
    refusals = scrape(world)["grader_submissions_refused"]
    assert value(refusals, "grader_submissions_refused_total", reason="per_user_limit") == 1
    assert value(refusals, "grader_submissions_refused_total", reason="queue_cap") == 0


def test_a_full_grader_sends_the_form_back_to_the_concept_page_with_why(world: World) -> None:
    world.web.settings.queue_cap = 1
    add_submission(world, world.other, SLUG, status=None)
    c, token = logged_in(world, world.student)
    before = count(world, Submission)
    page = back_on_page(c, paste(c, token, "def mine():\n    pass\n"))
    error = shown_error(page)
    assert error is not None and AT_CAPACITY.match(error), error
    assert count(world, Submission) == before
    # room again: the same form is taken
    world.web.settings.queue_cap = 5
    taken = paste(c, token, "def mine():\n    pass\n")
    assert taken.status_code == 303 and taken.headers["location"].startswith("/submissions/")


def test_retry_after_follows_depth_grading_time_and_workers() -> None:
    assert metrics.retry_after_s(100, 12.0, 4) == 300
    assert metrics.retry_after_s(1, 2.0, 8) == 10  # never under the floor
    assert metrics.retry_after_s(10_000, 60.0, 2) == 600  # nor over the ceiling
    assert metrics.retry_after_s(5, None, 1) == 5 * metrics.DEFAULT_GRADING_S
    assert metrics.retry_after_s(5, 10.0, 0) == 600
    assert metrics.at_capacity_message(7, 60).endswith("about 1 minute; your file was not submitted")
    assert "about 3 minutes" in metrics.at_capacity_message(7, 150)


def test_the_scrape_queries_count_the_same_on_each_database(database_url: str) -> None:
    """The histogram and the queue depth are SQL of their own: the same figures on SQLite and
    PostgreSQL."""
    engine = make_engine(database_url)
    upgrade(engine)
    factory = sessions(engine)
    with factory() as session:
        version = ExerciseVersion(slug="toy", version="v1", title="Toy", resources="cpu")
        session.add(version)
        session.flush()
        for state, grading_s in (("done", 0.2), ("done", 7.0), ("done", 7200.0), ("queued", None)):
            session.add(
                Submission(
                    exercise_version_id=version.id,
                    filename="a.py",
                    source=b"x",
                    queue="cpu",
                    state=state,
                    grading_s=grading_s,
                    finished_at=utcnow() if grading_s is not None else None,
                )
            )
        session.commit()
        h = metrics.histogram(session, Submission.grading_s)
        assert h.count == 3 and h.total == pytest.approx(7207.2)
        assert h.cumulative[metrics.BUCKETS_S.index(1.0)] == 1
        assert h.cumulative[metrics.BUCKETS_S.index(10.0)] == 2
        assert h.cumulative[-1] == 2  # 7200 s is over the last bound: only in +Inf
        assert metrics.queued_now(session) == 1
        assert metrics.median_grading_s(session) == 7.0
    engine.dispose()
