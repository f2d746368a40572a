"""The database and the submission state machine, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from grader.catalog import Catalog, load_catalog
from grader.jobs import submissions
from grader.store import Attempt, DatabaseError, Submission, make_engine, require_current, sessions, upgrade
from grader.store.db import current_revision, downgrade, head_revision

QUEUE_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "queue"
VERDICT = {"status": "passed", "summary": "passed all 3 tests"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(QUEUE_FIXTURES / "exercises", QUEUE_FIXTURES / "solutions")


@pytest.fixture
def factory(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    upgrade(engine)
    yield sessions(engine)
    engine.dispose()


def new(factory, catalog: Catalog) -> Submission:  # type: ignore[no-untyped-def]
    return submissions.create(
        factory, catalog.get("quick-sum"), b"def row_sums(r): ...", "rows.py", user="ada"
    )


def test_upgrade_creates_the_schema_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(DatabaseError, match="empty.*grader db upgrade"):
        require_current(engine)
    upgrade(engine)
    upgrade(engine)
    require_current(engine)
    assert current_revision(engine) == head_revision()
    assert {"users", "exercise_versions", "submissions", "attempts"} <= set(inspect(engine).get_table_names())
    downgrade(engine, "base")
    assert "submissions" not in inspect(engine).get_table_names()
    with pytest.raises(DatabaseError, match="grader db upgrade"):
        require_current(engine)
    engine.dispose()


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="not a database URL"):
        make_engine("nonsense")
    engine = make_engine(f"postgresql://nobody@/nothing?host={tmp_path}")
    with pytest.raises(DatabaseError, match="cannot reach the database"):
        upgrade(engine)
    engine.dispose()


def test_a_submission_is_stored_with_its_exercise_version(factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    first, second = new(factory, catalog), new(factory, catalog)
    assert (first.state, first.attempt, first.queue) == ("queued", 1, "cpu")
    assert first.job_id and first.job_id != second.job_id
    row = submissions.get(factory, first.id)
    assert row is not None and row.source == b"def row_sums(r): ..." and row.filename == "rows.py"
    assert row.exercise_version.slug == "quick-sum"
    assert row.exercise_version.version == catalog.get("quick-sum").version
    assert second.exercise_version_id == first.exercise_version_id  # one row per version


def test_only_one_claim_of_an_attempt_wins(factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    row = new(factory, catalog)
    wins: list[str] = []
    barrier = threading.Barrier(6)

    def claim(name: str) -> None:
        barrier.wait()
        if submissions.claim(factory, row.id, 1, name, 30):
            wins.append(name)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    stored = submissions.get(factory, row.id)
    assert stored is not None and stored.state == "running" and stored.lease_owner == wins[0]
    assert not submissions.claim(factory, row.id, 2, "late", 30)  # no such attempt yet


def test_only_the_lease_holder_writes_the_verdict_and_only_once(factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    row = new(factory, catalog)
    assert submissions.claim(factory, row.id, 1, "w1", 30)
    assert not submissions.finish(factory, row.id, 1, "intruder", {"status": "failed"})
    assert submissions.finish(factory, row.id, 1, "w1", VERDICT)
    assert not submissions.finish(factory, row.id, 1, "w1", {"status": "failed"})  # a duplicate
    stored = submissions.get(factory, row.id)
    assert stored is not None
    assert (stored.state, stored.status, stored.verdict) == ("done", "passed", VERDICT)
    assert stored.queued_s is not None and stored.grading_s is not None and stored.grading_s >= 0
    with factory() as session:
        attempts = session.scalars(select(Attempt).where(Attempt.submission_id == row.id)).all()
    assert [(a.number, a.worker, a.outcome) for a in attempts] == [(1, "w1", "passed")]


def test_an_expired_lease_is_retried_then_given_up(factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    row = new(factory, catalog)
    assert submissions.claim(factory, row.id, 1, "w1", 0.01)
    time.sleep(0.05)
    [retry] = submissions.expire_leases(factory, max_attempts=2)
    assert (retry.attempt, retry.gave_up, retry.queue) == (2, False, "cpu")
    assert submissions.expire_leases(factory, max_attempts=2) == []  # already taken back
    # the first worker wakes up late: its verdict is not written, nor its lease renewed
    assert not submissions.renew(factory, row.id, 1, "w1", 30)
    assert not submissions.finish(factory, row.id, 1, "w1", VERDICT)
    stored = submissions.get(factory, row.id)
    assert stored is not None and (stored.state, stored.attempt, stored.job_id) == ("queued", 2, retry.job_id)

    assert submissions.claim(factory, row.id, 2, "w2", 0.01)
    time.sleep(0.05)
    [last] = submissions.expire_leases(factory, max_attempts=2)
    assert last.gave_up and last.job_id is None
    stored = submissions.get(factory, row.id)
    assert stored is not None and stored.state == "system_error" and stored.status == "system_error"
    assert stored.message is not None and "failed this submission 2 times" in stored.message
    assert "w2" in stored.message


def test_a_live_lease_is_left_alone_and_renewed(factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    row = new(factory, catalog)
    assert submissions.claim(factory, row.id, 1, "w1", 0.3)
    assert submissions.renew(factory, row.id, 1, "w1", 30)
    time.sleep(0.4)
    assert submissions.expire_leases(factory, max_attempts=3) == []


def test_release_queues_the_next_attempt_for_failures_of_ours(factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    row = new(factory, catalog)
    assert submissions.claim(factory, row.id, 1, "w1", 30)
    assert submissions.release(factory, row.id, 1, "other", message="x", max_attempts=3) is None
    retry = submissions.release(factory, row.id, 1, "w1", message="sandbox failure", max_attempts=3)
    assert retry is not None and retry.attempt == 2 and not retry.gave_up
    with factory() as session:
        attempt = session.scalars(select(Attempt).where(Attempt.submission_id == row.id)).one()
    assert (attempt.outcome, attempt.message) == ("lost", "sandbox failure")


def test_a_lost_job_gets_a_new_id_once(factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    row = new(factory, catalog)
    assert row.job_id is not None
    time.sleep(0.05)
    assert [(i, a, q) for i, a, q, _ in submissions.queued(factory, older_than_s=0.01)] == [
        (row.id, 1, "cpu")
    ]
    replaced = submissions.replace_job(factory, row.id, 1, row.job_id)
    assert replaced is not None and replaced != row.job_id
    assert submissions.replace_job(factory, row.id, 1, row.job_id) is None  # someone already did


def test_the_migrations_build_exactly_the_models(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from grader.store import Base

    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert drift == [], "the models and the migrations disagree: add a migration"


def test_first_submissions_to_a_new_version_race_without_an_error(factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    """Many learners submit at once to an exercise version nobody submitted to yet: each is
    stored, and the version (and each new user name) gets one row."""
    from grader.store import ExerciseVersion, User

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    made: list[int] = []

    def submit(n: int) -> None:
        barrier.wait()
        try:
            row = submissions.create(
                factory, catalog.get("quick-sum"), b"x = 1", "rows.py", user=f"learner-{n % 2}"
            )
            made.append(row.id)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(made)) == 8
    with factory() as session:
        assert len(session.scalars(select(ExerciseVersion)).all()) == 1
        assert sorted(u.name for u in session.scalars(select(User))) == ["learner-0", "learner-1"]
