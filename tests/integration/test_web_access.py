"""What students can and cannot reach in the web app and the API.

Another student's submission is "not found", exactly like one that does not exist; every
instructor route refuses students and sends anonymous visitors to the login page (or answers 401
on the API), routes enumerated from the app so a new one is covered too; no response a student can
get carries a line of a hidden test, a reference solution or a known-wrong variant; forms need
the session's CSRF token; locked and pro concepts cannot be submitted.
"""

from __future__ import annotations

import gc
import json
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from grader.lti import registry
from grader.store import ApiToken, ExercisePackage, Submission, User
from grader.verdict import Status
from tests.integration.web_fixtures import (
    ROOT,
    Person,
    RouteInfo,
    Secret,
    World,
    add_submission,
    app_routes,
    client,
    count,
    csrf_in,
    fill,
    follow,
    leaks,
    log_in,
    raw_get,
    secret_lines,
)
from web import services

MISSING_ID = 987654
NOT_YOURS = "The form expired or came from elsewhere: reload the page and try again."
FOR_INSTRUCTORS_PAGE = "This page is for instructors."
FOR_INSTRUCTORS_API = {"detail": "Only instructors may do this."}
# routes anyone may use without logging in
PUBLIC_ROUTES = {
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/signup"),
    ("POST", "/signup"),
    ("POST", "/logout"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/healthz"),
    ("GET", "/highlight.css"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/metrics"),  # for Prometheus: GRADER_METRICS_TOKEN or the firewall guards it (test_metrics)
    # LTI: called by LMSs and their users' browsers, authenticated by the launch itself
    ("GET", "/lti/jwks"),
    ("GET", "/lti/config"),
    ("GET", "/lti/login"),
    ("POST", "/lti/login"),
    ("POST", "/lti/launch"),
    ("GET", "/lti/enter"),
    ("POST", "/lti/deep_link/select"),
    ("GET", "/lti/assets/lti.js"),
}


@pytest.fixture(scope="module")
def secrets() -> list[Secret]:
    found = secret_lines()
    assert len(found) >= 12 * 3, "expected a solution, hidden tests and wrong variants for each concept"
    bare = [s.path for s in found if not s.lines]
    assert not bare, f"no distinctive line to look for in {bare}: loosen distinctive_lines()"
    return found


def logged_in(world: World, who: Person) -> tuple[TestClient, str]:
    c = client(world.app)
    return c, log_in(c, who)


def routes(world: World) -> list[tuple[str, RouteInfo]]:
    """(method, route) for every method of every route (mounts excluded)."""
    return [(m, r) for r in app_routes(world.app) if not r.mount for m in sorted(r.methods - {"HEAD"})]


def is_instructor_route(route: RouteInfo) -> bool:
    return route.path.startswith(("/instructor", "/api/v1/instructor"))


def is_api(route: RouteInfo) -> bool:
    return route.path.startswith("/api/")


# --- another student's submission ----------------------------------------------------------------

DETAIL_ROUTES = [
    "/submissions/{id}",
    "/submissions/{id}/events",
    "/api/v1/submissions/{id}",
    "/api/v1/submissions/{id}/events",
]


@pytest.mark.parametrize("route", DETAIL_ROUTES)
def test_another_students_submission_is_not_found_like_a_missing_one(world: World, route: str) -> None:
    theirs = add_submission(world, world.student, "causal-masking")
    bob, _ = logged_in(world, world.other)
    hidden = bob.get(route.format(id=theirs), headers=world.other.bearer)
    missing = bob.get(route.format(id=MISSING_ID), headers=world.other.bearer)

    assert hidden.status_code == 404, hidden.text
    assert missing.status_code == 404, missing.text
    assert hidden.headers["content-type"] == missing.headers["content-type"]
    assert f"submission {theirs} not found" in hidden.text
    # the same answer but for the id: nothing tells an existing submission from a missing one
    assert hidden.text.replace(f"submission {theirs} ", "submission ? ") == missing.text.replace(
        f"submission {MISSING_ID} ", "submission ? "
    )
    assert "Ada" not in hidden.text and world.student.email not in hidden.text

    ian, _ = logged_in(world, world.instructor)
    seen = ian.get(route.format(id=theirs), headers=world.instructor.bearer)
    assert seen.status_code == 200, seen.text
    if route.endswith("/events"):
        assert "event: done" in seen.text and '"status": "passed"' in seen.text
    elif route.startswith("/api/"):
        assert seen.json()["id"] == theirs and seen.json()["user_id"] == world.student.id
        assert seen.json()["verdict"]["status"] == "passed"
    else:
        assert 'id="verdict-status"' in seen.text and world.student.email in seen.text


def test_another_students_submission_is_not_listed(world: World) -> None:
    theirs = add_submission(world, world.student, "causal-masking")
    mine = add_submission(world, world.other, "causal-masking", status=Status.FAILED)
    bob, _ = logged_in(world, world.other)

    for query in ("", "?exercise=causal-masking"):
        listed = bob.get(f"/api/v1/submissions{query}", headers=world.other.bearer)
        assert listed.status_code == 200, listed.text
        assert [s["id"] for s in listed.json()] == [mine]
    page = bob.get("/concepts/causal-masking")
    assert f'href="/submissions/{mine}"' in page.text
    assert f'href="/submissions/{theirs}"' not in page.text

    everyone = client(world.app).get("/api/v1/instructor/submissions", headers=world.instructor.bearer)
    assert {s["id"] for s in everyone.json()} == {theirs, mine}


# --- instructor routes ---------------------------------------------------------------------------


def path_values(world: World) -> dict[str, str]:
    submission = add_submission(world, world.student, "causal-masking")
    package = services.packages.validate_live(world.web, "causal-masking")
    return {
        "slug": "causal-masking",
        "submission_id": str(submission),
        "package_id": str(package.id),
        "user_id": str(world.student.id),
        "token_id": str(world.student.token_id),
        "platform_id": str(lti_platform(world)),
    }


def lti_platform(world: World) -> int:
    """A registered LTI platform (for the instructors' LTI pages)."""
    form = registry.PlatformForm(
        issuer="https://lms.example",
        client_id="tool",
        deployment_ids="1",
        auth_login_url="https://lms.example/auth",
        auth_token_url="https://lms.example/token",
        key_set_url="https://lms.example/jwks",
    )
    found = registry.find(world.factory, form.issuer, form.client_id)
    return found.id if found is not None else registry.add(world.factory, form).id


def test_students_get_403_on_every_instructor_route(world: World) -> None:
    values = path_values(world)
    ada, csrf = logged_in(world, world.student)
    ian, _ = logged_in(world, world.instructor)
    packages_before = count(world, ExercisePackage)
    checked, problems = [], []
    for method, route in routes(world):
        if not is_instructor_route(route):
            continue
        url = fill(route.path, values)
        checked.append(f"{method} {route.path}")
        if is_api(route):
            got = ada.request(method, url, headers=world.student.bearer, json={"submission_ids": [1]})
            if (got.status_code, got.json()) != (403, FOR_INSTRUCTORS_API):
                problems.append(f"{method} {url}: {got.status_code} {got.text[:200]}")
        else:
            form = {"csrf": csrf, "plan": "pro", "ids": values["submission_id"], "back": "/instructor/queue"}
            extra: dict[str, Any] = {"data": form}
            if route.path.endswith("/upload"):
                extra["files"] = {"file": ("x.zip", b"PK\x05\x06" + bytes(18))}
            got, _ = follow(ada, method, url, **(extra if method == "POST" else {}))
            if got.status_code != 403 or FOR_INSTRUCTORS_PAGE not in got.text:
                problems.append(f"{method} {url}: {got.status_code} {got.text[:200]}")
        # the ids are real: an instructor gets the page (a validation's event stream lasts until the
        # package is validated, and this one never is: test_web follows one to its end)
        if method == "GET" and not route.path.endswith("/events"):
            seen, _ = follow(ian, method, url, headers=world.instructor.bearer)
            if seen.status_code != 200:
                problems.append(f"instructor {method} {url}: {seen.status_code}")
    assert not problems, "\n".join(problems)
    assert len(checked) >= 20, checked
    assert {"POST /instructor/users/{user_id}/plan", "POST /api/v1/instructor/regrade"} <= set(checked)
    # and nothing happened
    with world.factory() as session:
        student = session.get(User, world.student.id)
        submission = session.get(Submission, int(values["submission_id"]))
        assert student is not None and student.plan == "free"
        assert submission is not None and (submission.attempt, submission.state) == (1, "done")
    assert count(world, ExercisePackage) == packages_before


def test_anonymous_visitors_are_sent_to_login_or_get_401(world: World) -> None:
    values = path_values(world)
    anon = client(world.app)
    csrf = csrf_in(anon.get("/login").text)  # a form from this anonymous session
    checked, problems = [], []
    for method, route in routes(world):
        if (method, route.path) in PUBLIC_ROUTES:
            continue
        url = fill(route.path, values)
        checked.append(f"{method} {route.path}")
        if is_api(route):
            got = anon.request(method, url, json={"submission_ids": [1]})
            expected = {"detail": "Send an API token: Authorization: Bearer <token>"}
            if (got.status_code, got.json()) != (401, expected) or got.headers.get("www-authenticate") != (
                "Bearer"
            ):
                problems.append(f"{method} {url}: {got.status_code} {got.text[:200]}")
            continue
        got, chain = follow(anon, method, url, **({"data": {"csrf": csrf}} if method == "POST" else {}))
        if not chain or not chain[-1].startswith("/login?next=") or 'action="/login"' not in got.text:
            problems.append(f"{method} {url}: {got.status_code} via {chain}")
        elif len(chain) == 1 and chain[0] != "/login?next=" + quote(url, safe="/"):
            problems.append(f"{method} {url}: sent to {chain[0]}")
    assert not problems, "\n".join(problems)
    assert len(checked) >= 30, checked
    assert "GET /instructor/exercises/{slug}" in checked and "GET /api/v1/instructor/queue" in checked


# --- hidden tests, solutions and wrong variants ----------------------------------------------------

HOSTILE_SLUGS = [
    "..",
    "..%2F..%2Fsolutions%2Fcausal-masking",
    "%2e%2e%2f%2e%2e%2fsolutions%2fcausal-masking%2fsolution.py",
    "causal-masking%2F..%2F..%2Fsolutions%2Fcausal-masking",
    "causal-masking%00",
]


def traversals(solutions_dir: Path) -> list[bytes]:
    """Requests for secret files through the static mounts, in the spellings attackers use."""
    found = []
    for target in (
        "solutions/causal-masking/solution.py",
        "solutions/causal-masking/test_hidden.py",
        "solutions/causal-masking/wrong/loop.py",
    ):
        absolute = str(ROOT / target)
        for mount in ("/static", "/vendor"):
            found += [
                f"{mount}/../../{target}",
                f"{mount}/../../../{target}",
                f"{mount}/..%2f..%2f{target}",
                f"{mount}/..%2F..%2F{target.replace('/', '%2F')}",
                f"{mount}/%2e%2e%2f%2e%2e%2f{target}",
                f"{mount}/%2e%2e/%2e%2e/{target}",
                f"{mount}/..%5c..%5c{target.replace('/', '%5c')}",
                f"{mount}/..%252f..%252f{target}",
                f"{mount}/{absolute}",
                f"{mount}/{quote(absolute, safe='')}",
                f"{mount}/.%2e/.%2e/{target}",
            ]
    found += [
        f"/{t}" for t in ("solutions/causal-masking/solution.py", "exercises/../solutions/rope/solution.py")
    ]
    found.append(f"/static/{quote(str(solutions_dir / 'rope' / 'test_hidden.py'), safe='')}")
    return [t.encode() for t in found]


def test_nothing_a_student_can_request_shows_hidden_tests_or_solutions(
    world: World, secrets: list[Secret]
) -> None:
    submissions = [
        add_submission(world, world.student, "causal-masking"),
        add_submission(world, world.student, "rmsnorm", kind="public", status=Status.FAILED),
    ]
    package = services.packages.validate_live(world.web, "causal-masking")
    slugs = sorted(world.web.catalog().exercises)
    ada, _ = logged_in(world, world.student)
    cookie = "; ".join(f"{k}={v}" for k, v in ada.cookies.items())
    headers = {**world.student.bearer, "cookie": cookie}

    choices = {
        "slug": slugs + HOSTILE_SLUGS,
        "submission_id": [str(s) for s in submissions],
        "package_id": [str(package.id)],
        "platform_id": [str(lti_platform(world))],
    }
    urls: list[str] = []
    for route in app_routes(world.app):
        if not route.mount and "GET" in route.methods:
            urls += expand(route.path, choices)
    static = sorted(p.relative_to(ROOT / "web" / "static") for p in (ROOT / "web/static").rglob("*"))
    urls += [f"/static/{p}" for p in static if (ROOT / "web/static" / p).is_file()]
    urls += ["/vendor/katex/dist/katex.min.js", "/vendor/codemirror/lib/codemirror.js"]

    responses: dict[str, tuple[int, str]] = {}
    for url in urls:
        got = ada.get(url, headers=world.student.bearer)
        responses[url] = (got.status_code, got.text)
    for raw in traversals(world.settings.solutions_dir):
        status, body = raw_get(world.app, raw, headers)
        responses[raw.decode()] = (status, body.decode("utf-8", "replace"))

    shown = {url: leaks(body, secrets) for url, (_, body) in responses.items()}
    assert not {url: files for url, files in shown.items() if files}, "a student can see secret files"
    errors = {url: status for url, (status, _) in responses.items() if status >= 500}
    assert not errors, f"server errors: {errors}"
    # the pages that show an exercise's public half were really fetched
    for slug in slugs:
        assert responses[f"/concepts/{slug}"][0] == 200
        assert responses[f"/api/v1/concepts/{slug}"][0] == 200
        assert json.loads(responses[f"/api/v1/concepts/{slug}"][1])["public_tests"]
    assert responses[f"/submissions/{submissions[0]}"][0] == 200
    assert responses["/static/app.js"][0] == 200
    assert responses["/vendor/katex/dist/katex.min.js"][0] == 200
    assert len(responses) > 150


def expand(template: str, choices: dict[str, list[str]]) -> list[str]:
    """Every way of filling `template` from `choices` (one parameter at most, as the app has)."""
    names = RouteInfo(template, frozenset(), False).params
    if not names:
        return [template]
    assert len(names) == 1, f"{template}: teach expand() to fill several parameters"
    assert names[0] in choices, f"no test value for path parameter {names[0]!r} of {template}: add one"
    return [fill(template, {names[0]: value}) for value in choices[names[0]]]


def test_instructors_see_the_hidden_tests_and_solutions(world: World, secrets: list[Secret]) -> None:
    ian, _ = logged_in(world, world.instructor)
    for slug in sorted(world.web.catalog().exercises):
        page = ian.get(f"/instructor/exercises/{slug}")
        assert page.status_code == 200, page.text
        expected = {s.path for s in secrets if s.path.startswith(f"solutions/{slug}/")}
        assert f"solutions/{slug}/test_hidden.py" in expected
        missing = expected - set(leaks(page.text, secrets))  # (files sharing lines show up too)
        assert not missing, f"{slug}: the instructor's page lacks {sorted(missing)}"


# --- forms and sessions ------------------------------------------------------------------------------


def refused(response: Any) -> bool:
    return response.status_code == 403 and NOT_YOURS in response.text


def bad_tokens(world: World) -> list[dict[str, str]]:
    """Form fields with no token, an invented one, and another session's (valid there)."""
    other = client(world.app)
    return [{}, {"csrf": "invented"}, {"csrf": csrf_in(other.get("/login").text)}]


def test_signup_needs_the_csrf_token(world: World) -> None:
    c = client(world.app)
    token = csrf_in(c.get("/signup").text)
    fields = {"email": "new@example.com", "password": "a-long-password", "name": "New"}
    for bad in bad_tokens(world):
        assert refused(c.post("/signup", data={**fields, **bad}))
    with world.factory() as session:
        assert session.scalar(select(User).where(User.email == "new@example.com")) is None
    assert c.post("/signup", data={**fields, "csrf": token}).status_code == 303


def test_login_needs_the_csrf_token(world: World) -> None:
    c = client(world.app)
    token = csrf_in(c.get("/login").text)
    fields = {"email": world.student.email, "password": world.student.password}
    for bad in bad_tokens(world):
        assert refused(c.post("/login", data={**fields, **bad}))
        assert c.get("/account").headers["location"] == "/login?next=/account"
    assert c.post("/login", data={**fields, "csrf": token}).status_code == 303
    assert c.get("/account").status_code == 200


def test_logout_needs_the_csrf_token(world: World) -> None:
    c, token = logged_in(world, world.student)
    for bad in bad_tokens(world):
        assert refused(c.post("/logout", data=bad))
        assert c.get("/account").status_code == 200  # still logged in
    assert c.post("/logout", data={"csrf": token}).headers["location"] == "/login"
    assert c.get("/account").status_code == 303


def test_submitting_needs_the_csrf_token(world: World) -> None:
    c, token = logged_in(world, world.student)
    fields = {"source": "def causal_mask(): pass\n", "kind": "submit"}
    for bad in bad_tokens(world):
        assert refused(c.post("/concepts/causal-masking/submissions", data={**fields, **bad}))
    assert count(world, Submission) == 0
    accepted = c.post("/concepts/causal-masking/submissions", data={**fields, "csrf": token})
    assert accepted.status_code == 303 and accepted.headers["location"].startswith("/submissions/")
    assert count(world, Submission) == 1


def test_creating_and_revoking_tokens_needs_the_csrf_token(world: World) -> None:
    c, token = logged_in(world, world.student)
    for bad in bad_tokens(world):
        assert refused(c.post("/account/tokens", data={"name": "ci", **bad}))
        assert refused(c.post(f"/account/tokens/{world.student.token_id}/revoke", data=bad))
    with world.factory() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == world.student.id)).all()
        assert [(r.name, r.revoked_at) for r in rows] == [("tests", None)]
    assert c.post("/account/tokens", data={"name": "ci", "csrf": token}).status_code in (201, 303)
    with world.factory() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == world.student.id)).all()
        assert sorted(r.name for r in rows) == ["ci", "tests"]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "//evil.example/concepts",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "///evil.example",
        " //evil.example",
        "http:evil.example",
    ],
)
def test_login_never_redirects_off_site(world: World, target: str) -> None:
    c = client(world.app)
    page = c.get("/login", params={"next": target})
    token = csrf_in(page.text)
    fields = {"csrf": token, "email": world.student.email, "password": world.student.password, "next": target}
    location = c.post("/login", data=fields).headers["location"]
    assert on_site(location), location
    # logged in already, the login page redirects at once
    assert on_site(c.get("/login", params={"next": target}).headers["location"])


def on_site(location: str) -> bool:
    # browsers drop tabs and newlines from URLs and read a backslash as a slash
    cleaned = location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    joined = urlsplit(urljoin("http://testserver/login", cleaned))
    return joined.scheme == "http" and joined.netloc == "testserver"


def test_a_revoked_api_token_gets_401(world: World) -> None:
    api = client(world.app)
    created = api.post(
        "/api/v1/tokens",
        json={"email": world.student.email, "password": world.student.password, "name": "ci"},
    )
    assert created.status_code == 201, created.text
    bearer = {"Authorization": f"Bearer {created.json()['token']}"}
    assert api.get("/api/v1/me", headers=bearer).json()["email"] == world.student.email

    # another student cannot revoke it
    bob, bob_csrf = logged_in(world, world.other)
    bob.post(f"/account/tokens/{created.json()['id']}/revoke", data={"csrf": bob_csrf})
    assert api.get("/api/v1/me", headers=bearer).status_code == 200

    ada, csrf = logged_in(world, world.student)
    assert ada.post(f"/account/tokens/{created.json()['id']}/revoke", data={"csrf": csrf}).status_code == 303
    refused_now = api.get("/api/v1/me", headers=bearer)
    assert refused_now.status_code == 401
    assert refused_now.json() == {"detail": "The API token is unknown or revoked."}
    assert refused_now.headers["www-authenticate"] == "Bearer"
    assert api.get("/api/v1/me", headers=world.student.bearer).status_code == 200  # the other one lives


def test_wrong_password_and_unknown_email_get_the_same_answer(world: World) -> None:
    c = client(world.app)
    token = csrf_in(c.get("/login").text)
    wrong = c.post("/login", data={"csrf": token, "email": world.student.email, "password": "not-it-at-all"})
    unknown = c.post(
        "/login", data={"csrf": token, "email": "nobody@example.com", "password": "not-it-at-all"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text
    assert wrong.text.replace(world.student.email, "EMAIL") == unknown.text.replace(
        "nobody@example.com", "EMAIL"
    )

    wrong_api = c.post("/api/v1/tokens", json={"email": world.student.email, "password": "not-it-at-all"})
    unknown_api = c.post("/api/v1/tokens", json={"email": "nobody@example.com", "password": "not-it-at-all"})
    assert wrong_api.status_code == unknown_api.status_code == 401
    assert wrong_api.json() == unknown_api.json() == {"detail": "Wrong email or password."}


def test_the_session_cookie_is_httponly_and_samesite_lax(world: World) -> None:
    c = client(world.app)
    token = csrf_in(c.get("/login").text)
    response = c.post(
        "/login", data={"csrf": token, "email": world.student.email, "password": world.student.password}
    )
    cookies = [h for h in response.headers.get_list("set-cookie") if h.startswith("grader_session=")]
    assert len(cookies) == 1, response.headers
    attributes = {
        part.strip().split("=", 1)[0].lower(): part.strip().partition("=")[2].lower()
        for part in cookies[0].split(";")[1:]
    }
    assert "httponly" in attributes
    assert attributes.get("samesite") == "lax"
    assert attributes.get("path") == "/"


# --- locked and pro concepts ---------------------------------------------------------------------------


def submit_api(world: World, who: Person, slug: str) -> tuple[int, dict[str, object]]:
    got = client(world.app).post(
        "/api/v1/submissions", headers=who.bearer, json={"exercise": slug, "source": "x = 1\n"}
    )
    return got.status_code, got.json()


def test_a_locked_concept_cannot_be_submitted(world: World) -> None:
    title = world.web.exercise("kv-cache").spec.title
    reason = f"{title} is locked: pass causal-masking, rmsnorm, rope first."
    assert submit_api(world, world.student, "kv-cache") == (403, {"detail": reason})
    assert count(world, Submission) == 0

    c, token = logged_in(world, world.student)
    source = "def decode():  # my draft\n    pass\n"
    sent = c.post("/concepts/kv-cache/submissions", data={"csrf": token, "source": source, "kind": "submit"})
    # refused on the concept's page, where it goes back to with the reason (the learner's code
    # stays in the browser's draft)
    assert sent.status_code == 303 and sent.headers["location"] == "/concepts/kv-cache", sent.text
    back = c.get("/concepts/kv-cache").text
    assert f'id="submit-error">{reason}<' in back
    assert 'id="locked-reason"' in back
    assert count(world, Submission) == 0


def test_a_pro_concept_needs_the_pro_plan(world: World) -> None:
    title = world.web.exercise("online-softmax").spec.title
    # the pro plan alone is not enough: the prerequisite comes first
    assert submit_api(world, world.pro, "online-softmax") == (
        403,
        {"detail": f"{title} is locked: pass causal-masking first."},
    )
    for who in (world.student, world.pro):
        add_submission(world, who, "causal-masking")
    assert submit_api(world, world.student, "online-softmax") == (
        403,
        {"detail": f"{title} is locked: needs the pro plan."},
    )
    status, body = submit_api(world, world.pro, "online-softmax")
    assert status == 201 and body["exercise"] == "online-softmax" and body["state"] == "queued"

    concepts = client(world.app).get("/api/v1/concepts", headers=world.student.bearer).json()
    card = next(c for c in concepts if c["slug"] == "online-softmax")
    assert (card["status"], card["pro"], card["locked_because"]) == ("locked", True, "needs the pro plan")

    # once an instructor moves the student to the pro plan, it opens
    ian, csrf = logged_in(world, world.instructor)
    moved = ian.post(f"/instructor/users/{world.student.id}/plan", data={"csrf": csrf, "plan": "pro"})
    assert moved.status_code == 303
    status, body = submit_api(world, world.student, "online-softmax")
    assert status == 201 and body["exercise"] == "online-softmax"


def test_forms_close_the_files_they_are_sent(world: World) -> None:
    """The CSRF check reads the form itself on routes that declare no form field: a file in it
    must still be closed when the request ends, not left to the garbage collector."""
    c, token = logged_in(world, world.student)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        status = c.post(
            "/logout", data={"csrf": token}, files={"file": ("big.bin", bytes(2_000_000))}
        ).status_code
        gc.collect()
    assert status == 303
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, unclosed
