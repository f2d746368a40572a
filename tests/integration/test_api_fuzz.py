"""The JSON API under generated input: schemathesis reads the app's OpenAPI spec and sends every
operation valid and invalid requests, through ASGI, as a student, as an instructor and without a
token; none may answer with a server error. Redis is up, so the API's 503 (queue down) cannot
happen here either.

The event stream is left out of the fuzzing (it lasts until its submission is graded) and tested
directly; ids too large for the database, which generated input reaches only by chance, are sent
on purpose to every route with an id in its path.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from grader.jobs import submissions
from grader.verdict import Status
from tests.integration.web_fixtures import (
    WORKER,
    World,
    add_submission,
    app_routes,
    client,
    fill,
    log_in,
    make_verdict,
)
from web import services
from web.routes import api

ROLES = ["student", "instructor", "anonymous"]
HUGE_IDS = [2**63, 10**30]


@pytest.fixture
def world(world: World) -> World:
    """The shared world with something to find: graded submissions of two students and a validation."""
    add_submission(world, world.student, "causal-masking")
    add_submission(world, world.other, "rmsnorm", status=Status.FAILED)
    services.packages.validate_live(world.web, "causal-masking")
    return world


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def api_spec() -> dict[str, Any]:
    """The API's OpenAPI spec, from its router alone: the app needs a database, and the spec is
    needed when tests are collected. test_the_spec_is_the_one_the_app_serves checks they agree."""
    app = FastAPI(title="LLM grader", version="1")
    app.include_router(api.router)
    return app.openapi()


api_schema = schemathesis.openapi.from_dict(api_spec()).exclude(path_regex=r"/events$")
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@api_schema.exclude(path="/api/v1/tokens").parametrize()
@FUZZ
def test_the_api_never_answers_with_a_server_error(case: schemathesis.Case, world: World, role: str) -> None:
    # a student's or an instructor's valid token replaces whatever was generated, so that requests
    # get past authentication; anonymous requests keep the generated header
    token = {} if role == "anonymous" else getattr(world, role).bearer
    response = case.call_and_validate(app=world.app, headers=token, checks=[not_a_server_error])
    if token:
        assert response.status_code != 401, "the token was refused: the fuzzing stopped at the door"


@api_schema.include(path="/api/v1/tokens").parametrize()
@FUZZ
def test_logging_in_never_answers_with_a_server_error(case: schemathesis.Case, world: World) -> None:
    case.call_and_validate(app=world.app, checks=[not_a_server_error])


def test_the_spec_is_the_one_the_app_serves(world: World) -> None:
    served = client(world.app).get("/openapi.json").json()
    spec = api_spec()
    assert served["paths"] == spec["paths"]
    assert served.get("components") == spec.get("components")


def test_the_spec_covers_the_api(world: World) -> None:
    spec = client(world.app).get("/openapi.json").json()
    operations = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    assert {
        "POST /api/v1/tokens",
        "GET /api/v1/me",
        "POST /api/v1/submissions",
        "GET /api/v1/submissions/{submission_id}",
        "GET /api/v1/submissions/{submission_id}/events",
        "POST /api/v1/instructor/regrade",
        "POST /api/v1/instructor/packages",
    } <= operations
    assert all(p.startswith("/api/v1/") for p in spec["paths"]), "pages are not part of the API"


# --- the event stream -------------------------------------------------------------------------------


def events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], fields.get("data", "")))
    return found


def test_the_event_stream_of_a_graded_submission(world: World) -> None:
    graded = add_submission(world, world.student, "causal-masking", status=Status.FAILED)
    c = client(world.app)
    got = c.get(f"/api/v1/submissions/{graded}/events", headers=world.student.bearer)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/event-stream")
    assert got.headers["cache-control"] == "no-cache"
    assert got.text.startswith("retry: 3000\n\n")
    kinds = events(got.text)
    assert [k for k, _ in kinds] == ["state", "done"]
    assert f'"submission": {graded}' in kinds[0][1] and '"state": "done"' in kinds[0][1]
    assert kinds[1][1] == f'{{"submission": {graded}, "status": "failed"}}'

    assert c.get(f"/api/v1/submissions/{graded}/events").status_code == 401
    theirs = c.get(f"/api/v1/submissions/{graded}/events", headers=world.other.bearer)
    assert (theirs.status_code, theirs.json()) == (404, {"detail": f"submission {graded} not found"})


def test_the_event_stream_follows_a_submission_until_it_is_graded(world: World) -> None:
    queued = add_submission(world, world.student, "causal-masking", status=None)
    exercise = world.web.exercise("causal-masking")

    def grade() -> None:  # what a worker would do, once the stream is open
        time.sleep(0.5)
        assert submissions.claim(world.factory, queued, 1, WORKER, 60.0)
        verdict = make_verdict("causal-masking", exercise.version, Status.PASSED)
        assert submissions.finish(world.factory, queued, 1, WORKER, verdict)

    worker = threading.Thread(target=grade)
    seen: list[str] = []
    deadline = time.monotonic() + 30
    with client(world.app).stream(
        "GET", f"/api/v1/submissions/{queued}/events", headers=world.student.bearer
    ) as stream:
        assert stream.status_code == 200
        worker.start()
        for line in stream.iter_lines():
            seen.append(line)
            if seen[-2:-1] == ["event: done"] or time.monotonic() > deadline:
                break
    worker.join()
    text = "\n".join(seen)
    assert "event: state" in text and '"state": "queued"' in text
    assert seen[-2:] == ["event: done", f'data: {{"submission": {queued}, "status": "passed"}}'], text


# --- ids the database cannot hold -----------------------------------------------------------------


def test_ids_too_large_for_the_database_are_not_found(world: World) -> None:
    """Integer ids in paths and bodies are unbounded in the spec; one past 64 bits must be a 404
    (or a 422), never a server error, on the API and on the pages."""
    page = client(world.app)
    csrf = log_in(page, world.instructor)
    api = client(world.app)
    problems, checked = [], 0
    for route in app_routes(world.app):
        names = route.params
        if route.mount or not names or not all(n.endswith("_id") for n in names):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            for huge in HUGE_IDS:
                url = fill(route.path, {n: str(huge) for n in names})
                if route.path.startswith("/api/"):
                    got = api.request(method, url, headers=world.instructor.bearer)
                else:
                    got = page.request(
                        method, url, data={"csrf": csrf, "plan": "pro"} if method == "POST" else None
                    )
                checked += 1
                if got.status_code >= 500:
                    problems.append(f"{method} {url}: {got.status_code}")
    for body_ids in ([HUGE_IDS[0]], [1, HUGE_IDS[1]]):
        got = api.post(
            "/api/v1/instructor/regrade", headers=world.instructor.bearer, json={"submission_ids": body_ids}
        )
        checked += 1
        if got.status_code >= 500:
            problems.append(f"POST /api/v1/instructor/regrade {body_ids}: {got.status_code}")
    got = page.post("/instructor/submissions/regrade", data={"csrf": csrf, "ids": [str(HUGE_IDS[1])]})
    checked += 1
    if got.status_code >= 500:
        problems.append(f"POST /instructor/submissions/regrade ids={HUGE_IDS[1]}: {got.status_code}")
    assert checked >= 20
    assert not problems, "\n".join(problems)
