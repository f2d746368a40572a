"""The web app end to end in one process: accounts, the concept map, submitting through pages and
the API, grading by a real worker in the sandbox, the unlock that follows, regrading, and an
uploaded exercise version validated through the queue and published.

The curriculum here is the toy catalog (fast gradings) with `guarded-sum` made to depend on
`toy-sum`, so a pass has something to unlock.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import re
import shutil
import socket
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from redis import Redis

from grader import fingerprint
from grader.events import Event, EventKind
from grader.jobs import queue as jobqueue
from grader.jobs import worker
from grader.library import package_root
from grader.settings import Settings
from grader.store import ExercisePackage, PackageArchive, Role, Submission, make_engine, upgrade
from tests.conftest import FIXTURES
from tests.services import RedisServer
from web import accounts
from web.app import create_app

SOLUTION = (FIXTURES / "catalog" / "solutions" / "toy-sum" / "solution.py").read_text()
WRONG = (FIXTURES / "catalog" / "solutions" / "toy-sum" / "wrong" / "columns.py").read_text()


@dataclass
class Stack:
    settings: Settings
    root: Path
    app: object
    redis: Redis

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(FIXTURES / "catalog", root / "catalog")
    toml = root / "catalog" / "exercises" / "guarded-sum" / "exercise.toml"
    toml.write_text(
        toml.read_text().replace('entrypoint = "rows"', 'prerequisites = ["toy-sum"]\nentrypoint = "rows"')
    )
    settings = Settings(
        data_dir=root / "var",
        exercises_dir=root / "catalog" / "exercises",
        solutions_dir=root / "catalog" / "solutions",
        redis_url=redis_server.url,
        sandbox="bwrap",
        pool_size=0,
    )
    upgrade(make_engine(settings.database()))
    yield Stack(settings, root, create_app(settings), Redis.from_url(redis_server.url))


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def signup(client: TestClient, email: str, password: str = "correct horse", name: str = "Ada") -> None:
    page = client.get("/signup")
    response = client.post(
        "/signup", data={"csrf": csrf(page.text), "email": email, "password": password, "name": name}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/concepts"


def token_for(client: TestClient, email: str, password: str = "correct horse") -> dict[str, str]:
    response = client.post("/api/v1/tokens", json={"email": email, "password": password, "name": "t"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_signup_refuses_bad_input_and_keeps_what_was_typed(stack: Stack) -> None:
    client = stack.client()
    page = client.get("/signup")
    response = client.post(
        "/signup", data={"csrf": csrf(page.text), "email": "not-an-email", "password": "short", "name": "Bo"}
    )
    assert response.status_code == 422
    assert "Enter a valid email address." in response.text
    assert "8 to 256 characters" in response.text
    assert 'value="Bo"' in response.text
    signup(client, "bo@example.com", name="Bo")
    other = stack.client()
    page = other.get("/signup")
    again = other.post(
        "/signup",
        data={"csrf": csrf(page.text), "email": "BO@example.com", "password": "another one", "name": "Bo"},
    )
    assert again.status_code == 422
    assert "exists already" in again.text


def test_login_logout_and_wrong_password(stack: Stack) -> None:
    client = stack.client()
    signup(client, "cy@example.com", name="Cy")
    logout = client.post("/logout", data={"csrf": csrf(client.get("/concepts").text)})
    assert logout.status_code == 303
    assert client.get("/concepts").headers["location"] == "/login?next=/concepts"
    page = client.get("/login")
    wrong = client.post(
        "/login", data={"csrf": csrf(page.text), "email": "cy@example.com", "password": "nope nope"}
    )
    assert wrong.status_code == 401
    assert "Wrong email or password." in wrong.text
    right = client.post(
        "/login",
        data={
            "csrf": csrf(page.text),
            "email": "cy@example.com",
            "password": "correct horse",
            "next": "/account",
        },
    )
    assert right.status_code == 303 and right.headers["location"] == "/account"
    assert "cy@example.com" in client.get("/account").text


def test_concept_map_locks_what_needs_a_prerequisite(stack: Stack) -> None:
    client = stack.client()
    signup(client, "di@example.com", name="Di")
    page = client.get("/concepts").text
    assert re.search(r'data-slug="toy-sum" data-status="unlocked"', page)
    assert re.search(r'data-slug="guarded-sum" data-status="locked"', page)
    assert "Pass toy-sum first" in page
    # a newcomer is pointed at the first open concept, on the page and in the API
    assert re.search(r'id="next-up"[^>]*>New here\? Start with\s*<a href="/concepts/toy-sum">', page)
    assert re.search(r'class="card unlocked next" data-slug="toy-sum"', page)
    locked = client.get("/concepts/guarded-sum").text
    assert 'id="locked-reason"' in locked and "pass toy-sum first" in locked
    response = client.post(
        "/concepts/guarded-sum/submissions", data={"csrf": csrf(locked), "source": SOLUTION, "kind": "submit"}
    )
    # back to the concept's page, which says why (what was typed stays in the browser's draft)
    assert response.status_code == 303 and response.headers["location"] == "/concepts/guarded-sum"
    back = client.get("/concepts/guarded-sum").text
    assert 'id="submit-error"' in back and "Row sums, tightly limited is locked" in back
    headers = token_for(client, "di@example.com")
    listed = client.get("/api/v1/concepts", headers=headers).json()
    assert [c["slug"] for c in listed if c["next_up"]] == ["toy-sum"]
    api = client.post(
        "/api/v1/submissions", json={"exercise": "guarded-sum", "source": SOLUTION}, headers=headers
    )
    assert api.status_code == 403
    assert "pass toy-sum first" in api.json()["detail"]


def test_api_tokens_are_shown_once_and_can_be_revoked(stack: Stack) -> None:
    client = stack.client()
    signup(client, "ed@example.com", name="Ed")
    account = client.get("/account").text
    created = client.post("/account/tokens", data={"csrf": csrf(account), "name": "laptop"})
    assert created.status_code == 201
    page = created.text
    token = re.search(r'id="new-token">([^<]+)<', page)
    assert token is not None
    assert 'id="new-token"' not in client.get("/account").text  # shown once
    headers = {"Authorization": f"Bearer {token.group(1)}"}
    assert client.get("/api/v1/me", headers=headers).json()["email"] == "ed@example.com"
    token_id = re.search(r"/account/tokens/(\d+)/revoke", page)
    assert token_id is not None
    client.post(f"/account/tokens/{token_id.group(1)}/revoke", data={"csrf": csrf(page)})
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_submission_waits_with_its_queue_position(stack: Stack) -> None:
    client = stack.client()
    signup(client, "fay@example.com", name="Fay")
    headers = token_for(client, "fay@example.com")
    created = client.post(
        "/api/v1/submissions", json={"exercise": "toy-sum", "source": WRONG}, headers=headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["state"] == "queued" and body["exercise"] == "toy-sum" and body["kind"] == "submit"
    page = client.get(f"/submissions/{body['id']}").text
    assert 'id="live"' in page and "Queued" in page
    assert jobqueue.queue(stack.redis, "cpu").get_job_ids()  # on the queue
    empty = client.post("/api/v1/submissions", json={"exercise": "toy-sum", "source": "  "}, headers=headers)
    assert empty.status_code == 422 and empty.json()["detail"] == "the submission is empty"
    for _ in range(2):
        client.post("/api/v1/submissions", json={"exercise": "toy-sum", "source": WRONG}, headers=headers)
    too_many = client.post(
        "/api/v1/submissions", json={"exercise": "toy-sum", "source": WRONG}, headers=headers
    )
    assert too_many.status_code == 429 and "3 submissions waiting" in too_many.json()["detail"]
    unknown = client.post("/api/v1/submissions", json={"exercise": "nope", "source": "x"}, headers=headers)
    assert unknown.status_code == 404


@pytest.fixture(scope="module")
def grading(stack: Stack) -> Iterator[worker.WorkerContext]:
    """A worker's context in this process: jobs are run by calling them. It shares the
    database and Redis but not the data directory, as a worker on another host would."""
    settings = stack.settings.model_copy(
        update={"data_dir": stack.root / "worker-var", "database_url": stack.settings.database()}
    )
    ctx = worker.WorkerContext.from_settings(settings)
    worker._context = ctx
    yield ctx
    worker._context = None
    ctx.backend.close()


def grade_queued(stack: Stack, ctx: worker.WorkerContext) -> list[str]:
    """Run every job waiting on the cpu queue, as a worker would."""
    outcomes = []
    q = jobqueue.queue(stack.redis, "cpu")
    while (job := q.dequeue_any([q], None, connection=stack.redis, serializer=q.serializer)) is not None:
        found, _ = job
        kwargs = found.kwargs
        if "package_id" in kwargs:
            outcomes.append(worker.validate_job(**kwargs))
        else:
            outcomes.append(worker.grade_attempt(ctx, kwargs["submission_id"], kwargs["attempt"]))
    return outcomes


@pytest.mark.sandbox
@pytest.mark.slow
def test_fail_then_pass_then_the_next_concept_unlocks(stack: Stack, grading: worker.WorkerContext) -> None:
    stack.redis.flushall()
    client = stack.client()
    signup(client, "gus@example.com", name="Gus")
    headers = token_for(client, "gus@example.com")
    public = client.post(
        "/api/v1/submissions",
        json={"exercise": "toy-sum", "source": SOLUTION, "kind": "public"},
        headers=headers,
    ).json()
    wrong = client.post(
        "/api/v1/submissions", json={"exercise": "toy-sum", "source": WRONG}, headers=headers
    ).json()
    assert grade_queued(stack, grading) == ["passed", "failed"]

    done = client.get(f"/api/v1/submissions/{public['id']}", headers=headers).json()
    assert done["status"] == "passed" and done["kind"] == "public"
    assert done["verdict"]["performance"] == []  # public tests only
    assert {t["visibility"] for t in done["verdict"]["tests"]} == {"public"}
    # a public-test pass does not count
    assert re.search(r'data-slug="guarded-sum" data-status="locked"', client.get("/concepts").text)

    failed_page = client.get(f"/submissions/{wrong['id']}").text
    assert 'id="verdict-status">Failed<' in failed_page
    assert 'id="unlocked"' not in failed_page
    # the page and the API give the same counts and the same mistakes, every failing test in one
    verdict = client.get(f"/api/v1/submissions/{wrong['id']}", headers=headers).json()["verdict"]
    counts, mistakes = verdict["counts"], verdict["mistakes"]
    assert counts["failed"] == sum(len(m["tests"]) for m in mistakes) > 0
    assert f"{counts['passed']} of {counts['total']} passed" in failed_page
    assert 'id="mistakes"' in failed_page
    assert [str(escape(m["title"])) in failed_page for m in mistakes] == [True] * len(mistakes)

    page = client.get("/concepts/toy-sum").text
    posted = client.post(
        "/concepts/toy-sum/submissions", data={"csrf": csrf(page), "source": SOLUTION, "kind": "submit"}
    )
    assert posted.status_code == 303
    submission_id = int(posted.headers["location"].rsplit("/", 1)[1])
    assert grade_queued(stack, grading) == ["passed"]
    passed_page = client.get(f"/submissions/{submission_id}").text
    assert 'id="verdict-status">Passed<' in passed_page
    assert 'id="unlocked"' in passed_page and 'href="/concepts/guarded-sum"' in passed_page
    assert 'id="perf-chart"' in passed_page
    api = client.get(f"/api/v1/submissions/{submission_id}", headers=headers).json()
    assert api["unlocked"] == ["guarded-sum"]
    assert re.search(r'data-slug="guarded-sum" data-status="unlocked"', client.get("/concepts").text)
    assert re.search(r'data-slug="toy-sum" data-status="passed"', client.get("/concepts").text)
    # the pass moves "next up" to what it unlocked
    assert re.search(r'Next up:\s*<a href="/concepts/guarded-sum">', client.get("/concepts").text)
    listed = client.get("/api/v1/concepts", headers=headers).json()
    assert [c["slug"] for c in listed if c["next_up"]] == ["guarded-sum"]
    with client.stream("GET", f"/api/v1/submissions/{submission_id}/events", headers=headers) as events:
        text = events.read().decode()
    assert (
        "event: state" in text
        and f'event: done\ndata: {{"submission": {submission_id}, "status": "passed"}}' in text
    )

    # the instructor regrades it: a new attempt, graded again, the verdict replaced
    instructor = accounts.create_user(
        grading.factory, "teach@example.com", "correct horse", "Teach", role=Role.INSTRUCTOR
    )
    assert instructor.role == "instructor"
    teacher = token_for(stack.client(), "teach@example.com")
    regraded = client.post(
        "/api/v1/instructor/regrade", json={"submission_ids": [submission_id, 999999]}, headers=teacher
    )
    assert regraded.json() == {"queued": 1}
    # while the regrade waits, the concept stays passed (a pass is never taken away)
    assert re.search(r'data-slug="toy-sum" data-status="passed"', client.get("/concepts").text)
    assert (
        client.post(
            "/api/v1/instructor/regrade", json={"submission_ids": [submission_id]}, headers=headers
        ).status_code
        == 403
    )
    assert grade_queued(stack, grading) == ["passed"]
    with grading.factory() as session:
        row = session.get(Submission, submission_id)
        assert row is not None and row.attempt == 2 and row.status == "passed"
        assert [a.outcome for a in row.attempts] == ["passed", "passed"]
    cohort = client.get("/api/v1/instructor/cohort", headers=teacher).json()
    gus = next(s for s in cohort["students"] if s["email"] == "gus@example.com")
    assert gus["concepts"]["toy-sum"] == {"passed": True, "attempts": 2, "last_status": "passed"}
    stats = {c["slug"]: c for c in cohort["concepts"]}
    assert stats["toy-sum"]["median_attempts"] == 2


def package_zip(
    root: Path, slug: str, readme_suffix: str, leave_out: tuple[str, ...] = (), *, guide: bool = False
) -> bytes:
    """The exercise `slug` of the catalog at `root` as an upload, its README grown by
    `readme_suffix`, without the files named in `leave_out`: as a package (`exercise/`,
    `solutions/`), or with `guide` in the repository's layout that docs/authoring.md teaches
    (`exercises/<slug>/`, `solutions/<slug>/`, and the catalog's tracks.toml)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for base, prefix in (
            (root / "exercises" / slug, f"exercises/{slug}" if guide else "exercise"),
            (root / "solutions" / slug, f"solutions/{slug}" if guide else "solutions"),
        ):
            for path in sorted(base.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.name not in leave_out:
                    data = path.read_bytes()
                    if path.name == "README.md" and base.parent.name == "exercises":
                        data += readme_suffix.encode()
                    archive.writestr(f"{prefix}/{path.relative_to(base)}", data)
        if guide:
            archive.writestr("exercises/tracks.toml", (root / "exercises" / "tracks.toml").read_bytes())
    return buffer.getvalue()


class Watching:
    """The worker's Redis, which at each check a validation publishes asks what the API, the
    page's state and the page show of package `package_id` (into `seen`)."""

    def __init__(
        self,
        redis: Redis,
        package_id: int,
        seen: list[tuple[dict[str, object], list[object]]],
        api: TestClient,
        page: TestClient,
        headers: dict[str, str],
    ) -> None:
        self.redis, self.package_id, self.seen = redis, package_id, seen
        self.api, self.page, self.headers = api, page, headers

    def __getattr__(self, name: str) -> object:
        return getattr(self.redis, name)

    def publish(self, channel: str, message: str) -> object:
        event = Event.from_json(message)
        if event is not None and event.kind is EventKind.CHECK:
            where = f"/instructor/packages/{self.package_id}"
            shown: list[object] = [
                self.api.get(f"/api/v1{where}", headers=self.headers).json()["progress"],
                self.page.get(f"{where}/state").json()["progress"],
                self.page.get(where).text,
            ]
            self.seen.append((event.to_dict(), shown))
        return self.redis.publish(channel, message)


def log_in_page(client: TestClient, email: str, password: str = "correct horse") -> None:
    page = client.get("/login")
    done = client.post("/login", data={"csrf": csrf(page.text), "email": email, "password": password})
    assert done.status_code == 303, done.text


@pytest.mark.sandbox
@pytest.mark.slow
def test_an_uploaded_version_is_validated_then_published(
    stack: Stack, grading: worker.WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.redis.flushall()
    client = stack.client()
    accounts.create_user(grading.factory, "prof@example.com", "correct horse", "Prof", role=Role.INSTRUCTOR)
    signup(client, "hal@example.com", name="Hal")
    student = token_for(client, "hal@example.com")
    teacher = token_for(client, "prof@example.com")
    before = client.get("/api/v1/submissions", headers=student)
    assert before.status_code == 200
    old = client.post(
        "/api/v1/submissions", json={"exercise": "toy-sum", "source": SOLUTION}, headers=student
    ).json()

    # without the two slow wrong variants: validating them adds half a minute and nothing here;
    # zipped as the authoring guide lays an exercise out
    slow = ("loop.py", "materialize.py")
    suffix = "\nA new paragraph in version two.\n"
    data = package_zip(stack.root / "catalog", "toy-sum", suffix, slow, guide=True)
    refused = client.post("/api/v1/instructor/packages", files={"file": ("x.zip", data)}, headers=student)
    assert refused.status_code == 403
    uploaded = client.post("/api/v1/instructor/packages", files={"file": ("toy.zip", data)}, headers=teacher)
    assert uploaded.status_code == 201, uploaded.text
    package = uploaded.json()
    assert package["state"] == "queued" and package["slug"] == "toy-sum" and package["origin"] == "upload"
    again = client.post("/api/v1/instructor/packages", files={"file": ("toy.zip", data)}, headers=teacher)
    assert again.status_code == 409
    early = client.post(f"/api/v1/instructor/packages/{package['id']}/publish", headers=teacher)
    assert early.status_code == 409 and "only a validated package" in early.json()["detail"]

    # while the worker validates, every check it begins is published and shown: the API, the
    # page's state and the page itself say which check runs, k of n
    page = stack.client()
    log_in_page(page, "prof@example.com")
    watched: list[tuple[dict[str, object], list[object]]] = []
    monkeypatch.setattr(
        grading, "redis", Watching(grading.redis, package["id"], watched, client, page, teacher)
    )
    outcomes = grade_queued(stack, grading)
    monkeypatch.undo()
    validated = client.get(f"/api/v1/instructor/packages/{package['id']}", headers=teacher).json()
    assert sorted(outcomes) == ["passed", "valid"], validated["report"]
    assert validated["state"] == "valid", validated["message"]
    subjects = [c["subject"] for c in validated["report"]["checks"]]
    assert subjects[:2] == ["reference", "skeleton"] and subjects[2:] == ["wrong/columns"]
    begun = [(e["subject"], e["current"], e["total"], e["message"]) for e, _ in watched if "ok" not in e]
    assert begun == [
        ("reference", 1, 3, "checking reference (1 of 3)"),
        ("skeleton", 2, 3, "checking skeleton (2 of 3)"),
        ("wrong/columns", 3, 3, "checking wrong/columns (3 of 3)"),
    ]
    for event, (api, state, html) in watched:
        if "ok" not in event:
            assert api == state == event, (api, state)
            assert f">{event['message']}</p>" in str(html)
    ended = [(e["subject"], e["ok"], e["current"]) for e, _ in watched if "ok" in e]
    assert ended == [("reference", True, 1), ("skeleton", True, 2), ("wrong/columns", True, 3)]
    assert validated["progress"] is None  # done: nothing runs
    # the checks held, so the speed check was calibrated: the reference against itself (the slow
    # variants were left out of this upload)
    [speed] = validated["report"]["calibration"]["checks"]
    assert speed["check"] == "speed" and speed["reference"]["ratio"] > 0 and speed["slow"] == []
    assert "no wrong/ variant is meant to be slow on speed" in speed["summary"]
    shown = page.get(f"/instructor/packages/{package['id']}").text
    assert 'id="calibration"' in shown and "reference vs itself" in shown
    for follower, url, headers in (
        (client, f"/api/v1/instructor/packages/{package['id']}/events", teacher),
        (page, f"/instructor/packages/{package['id']}/events", {}),
    ):
        with follower.stream("GET", url, headers=headers) as events:
            stream = events.read().decode()
        assert (
            "event: state" in stream
            and f'event: done\ndata: {{"package": {package["id"]}, "status": "valid"}}' in stream
        ), stream

    assert "A new paragraph in version two." not in client.get("/concepts/toy-sum").text
    published = client.post(f"/api/v1/instructor/packages/{package['id']}/publish", headers=teacher)
    assert published.status_code == 200 and published.json()["state"] == "published"
    assert "A new paragraph in version two." in client.get("/concepts/toy-sum").text
    new = client.post(
        "/api/v1/submissions", json={"exercise": "toy-sum", "source": SOLUTION}, headers=student
    ).json()
    assert new["exercise_version"] == package["version"] != old["exercise_version"]
    assert grade_queued(stack, grading) == ["passed"]
    with grading.factory() as session:
        graded = session.get(Submission, new["id"])
        assert graded is not None and graded.verdict is not None
        assert graded.verdict["provenance"]["exercise_version"] == package["version"]
        # where it was graded: the worker's host and runtime, for a receipt that can be replayed
        assert graded.verdict["provenance"]["host"] == socket.gethostname()
        assert graded.verdict["provenance"]["runtime_digest"] == fingerprint.runtime_digest()
        stored = session.get(ExercisePackage, package["id"])
        assert stored is not None and (stack.settings.data_dir / str(stored.path)).is_dir()
        # the worker shares no disk with the web app: it unpacked the version from the
        # database's archive, named by its SHA-256, into its own data directory
        assert stored.archive_sha256 is not None
        archived = session.get(PackageArchive, stored.archive_sha256)
        assert archived is not None and hashlib.sha256(archived.data).hexdigest() == stored.archive_sha256
    assert grading.settings.data_dir != stack.settings.data_dir
    assert package_root(grading.settings.data_dir, "toy-sum", package["version"]).is_dir()

    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("../evil.py", "print('x')")
    refused_zip = client.post(
        "/api/v1/instructor/packages", files={"file": ("bad.zip", bad.getvalue())}, headers=teacher
    )
    assert refused_zip.status_code == 422 and ".." in refused_zip.json()["detail"]


def test_sessions_are_signed_and_the_key_is_kept(stack: Stack) -> None:
    key = stack.settings.data_dir / "secret_key"
    assert key.is_file() and oct(key.stat().st_mode & 0o777) == "0o600"
    client = stack.client()
    signup(client, "ivy@example.com", name="Ivy")
    cookie = client.cookies.get("grader_session")
    assert cookie
    forged = stack.client()
    forged.cookies.set("grader_session", cookie[:-4] + "AAAA")
    assert forged.get("/concepts").status_code == 303
    second = create_app(stack.settings)  # a restart keeps sessions valid
    restarted = TestClient(second, follow_redirects=False)
    restarted.cookies.set("grader_session", cookie)
    assert restarted.get("/concepts").status_code == 200


def test_a_package_whose_validation_job_was_lost_is_queued_again(
    stack: Stack, grading: worker.WorkerContext
) -> None:
    stack.redis.flushall()
    client = stack.client()
    accounts.create_user(grading.factory, "dean@example.com", "correct horse", "Dean", role=Role.INSTRUCTOR)
    teacher = token_for(client, "dean@example.com")
    data = package_zip(stack.root / "catalog", "guarded-sum", "\nAnother version.\n")
    package = client.post(
        "/api/v1/instructor/packages", files={"file": ("g.zip", data)}, headers=teacher
    ).json()
    assert package["state"] == "queued"
    stack.redis.flushall()  # Redis restarted without persistence: the job is gone
    with grading.factory() as session:
        row = session.get(ExercisePackage, package["id"])
        assert row is not None
        row.created_at = row.created_at - datetime.timedelta(minutes=5)
        old_job = row.job_id
        session.commit()
    counts = worker.reconcile(grading)  # (also requeues earlier tests' queued submissions)
    assert counts["requeued"] >= 1
    with grading.factory() as session:
        row = session.get(ExercisePackage, package["id"])
        assert row is not None and row.state == "queued" and row.job_id != old_job
        assert row.job_id in jobqueue.queue(stack.redis, "cpu").get_job_ids()
    assert worker.reconcile(grading)["requeued"] == 0  # waiting again: left alone
    stack.redis.flushall()


SPELLS_INPUTS = """import types

import torch


def _boom():
    raise IndexError("boom")


def row_sums(x):
    if tuple(x.shape) == (2, 3):
        return x @ torch.ones(3)
    values = [int(abs(v) * 1000) for v in x.flatten()[:4].tolist()] or [0]
    code = _boom.__code__.replace(co_name="LEAK_" + "_".join(map(str, values)), co_firstlineno=values[0] + 1)
    types.FunctionType(code, globals())()
"""


@pytest.mark.sandbox
@pytest.mark.slow
def test_what_a_submission_spells_from_hidden_inputs_reaches_no_page(
    stack: Stack, grading: worker.WorkerContext
) -> None:
    """A submission that renames and moves its code to spell the hidden inputs into its traceback:
    the page, the API and the event stream show a hidden test's outcome in our words only."""
    stack.redis.flushall()
    client = stack.client()
    signup(client, "eve@example.com", name="Eve")
    headers = token_for(client, "eve@example.com")
    posted = client.post(
        "/api/v1/submissions", json={"exercise": "toy-sum", "source": SPELLS_INPUTS}, headers=headers
    ).json()
    assert grade_queued(stack, grading) == ["failed"]
    api = client.get(f"/api/v1/submissions/{posted['id']}", headers=headers)
    page = client.get(f"/submissions/{posted['id']}")
    with client.stream("GET", f"/api/v1/submissions/{posted['id']}/events", headers=headers) as events:
        stream = events.read().decode()
    hidden = [t for t in api.json()["verdict"]["tests"] if t["visibility"] == "hidden"]
    assert hidden and all(t["duration_s"] is None for t in hidden)
    assert {t["message"] for t in hidden if t["outcome"] == "error"} == {"your code raised IndexError"}
    for body in (api.text, page.text, stream):  # the page also shows the source, which says "LEAK_"
        assert not re.search(r"LEAK_[0-9]|line [0-9]", body)


def test_the_queue_page_shows_each_workers_host_and_flags_those_that_differ(
    stack: Stack, grading: worker.WorkerContext
) -> None:
    from rq import Worker

    stack.redis.flushall()
    worker.heartbeat(grading)  # what a running worker publishes with each reconciliation
    [mine] = fingerprint.published(stack.redis, [grading.name]).values()
    assert mine.host == socket.gethostname() and mine.runtime_digest == fingerprint.runtime_digest()
    assert mine.grader_version and mine.python and mine.sandbox == grading.backend.name
    stack.redis.flushall()
    for name, torch in (("a", "2.13.0"), ("b", "2.13.0"), ("c", "2.12.0"), ("d", None)):
        rq_worker = Worker([jobqueue.queue(stack.redis, "cpu")], connection=stack.redis, name=f"host-{name}")
        rq_worker.register_birth()
        if torch is not None:  # d: a worker whose heartbeat is gone
            fingerprint.publish(
                stack.redis, f"host-{name}", mine.model_copy(update={"host": name, "torch": torch}), 60
            )
    accounts.create_user(
        grading.factory, "queue-prof@example.com", "correct horse", "Q", role=Role.INSTRUCTOR
    )
    page = stack.client()
    log_in_page(page, "queue-prof@example.com")
    html = page.get("/instructor/queue").text
    assert re.search(r'id="fingerprint-warning">Workers of the same queue differ in torch:', html), html
    flagged = re.findall(r'data-differs="([^"]*)"><td>(host-\w)</td>', html)
    assert flagged == [("torch", "host-c")]
    assert re.search(r"<td>host-d</td>.*?no heartbeat", html, re.S)
    teacher = token_for(page, "queue-prof@example.com")
    api = {w["name"]: w for w in page.get("/api/v1/instructor/queue", headers=teacher).json()["workers"]}
    assert api["host-c"]["differs"] == ["torch"] and api["host-a"]["differs"] == []
    assert api["host-c"]["fingerprint"]["torch"] == "2.12.0" and api["host-d"]["fingerprint"] is None
