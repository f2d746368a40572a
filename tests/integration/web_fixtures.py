"""Shared set-up for the web tests: the app on a fresh database, a few people with logins and API
tokens, finished submissions written straight into the database (no worker), the app's routes,
and raw ASGI requests for paths an HTTP client would normalise before sending.

Imported explicitly by the test modules that use it; the fixtures built on it are in conftest.py.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.jobs import submissions
from grader.settings import Settings
from grader.store import ExercisePackage, Role, Submission, make_engine, sessions, upgrade
from grader.verdict import Outcome, Provenance, Status, TestResult, Verdict
from web import accounts, services
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
WORKER = "test-worker"
# a submission of our own: nothing in it may look like a reference solution or a hidden test
OWN_SOURCE = "def causal_mask(n_q, n_k, align='top-left'):\n    raise NotImplementedError  # mine\n"


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    password: str
    name: str
    token: str
    token_id: int

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class People:
    student: Person  # free plan
    other: Person  # another free student
    pro: Person  # a student on the pro plan
    instructor: Person


@dataclass
class World:
    app: FastAPI
    settings: Settings
    factory: sessionmaker[Session]
    people: People

    @property
    def web(self) -> services.Web:
        web: services.Web = self.app.state.web
        return web

    @property
    def student(self) -> Person:
        return self.people.student

    @property
    def other(self) -> Person:
        return self.people.other

    @property
    def pro(self) -> Person:
        return self.people.pro

    @property
    def instructor(self) -> Person:
        return self.people.instructor

    def close(self) -> None:
        for factory in (self.factory, self.web.factory):
            factory.kw["bind"].dispose()


def make_people(data_dir: Path) -> People:
    """A database at the current schema in `data_dir` with a login and an API token for each
    person (password hashing is slow: build this once and copy the folder per test)."""
    engine = make_engine(Settings(data_dir=data_dir).database())
    upgrade(engine)
    factory = sessions(engine)

    def person(email: str, name: str, role: Role = Role.STUDENT, plan: str = "free") -> Person:
        password = f"pw-{name.lower()}-0123"
        user = accounts.create_user(factory, email, password, name, role=role, plan=plan)
        row, token = accounts.create_token(factory, user.id, "tests")
        return Person(user.id, email, password, user.name, token, row.id)

    people = People(
        student=person("ada@example.com", "Ada"),
        other=person("bob@example.com", "Bob"),
        pro=person("pia@example.com", "Pia", plan="pro"),
        instructor=person("ian@example.com", "Ian", role=Role.INSTRUCTOR, plan="pro"),
    )
    engine.dispose()  # the SQLite file is complete now: it can be copied
    return people


def open_world(template: Path, people: People, data_dir: Path, redis_url: str) -> World:
    """The app on a copy of the database that `make_people` built in `template`."""
    shutil.copytree(template, data_dir)
    settings = Settings(data_dir=data_dir, redis_url=redis_url)
    return World(
        app=create_app(settings),
        settings=settings,
        factory=sessions(make_engine(settings.database())),
        people=people,
    )


def client(app: FastAPI) -> TestClient:
    """A client that shows redirects instead of following them, and server errors as 500s."""
    return TestClient(app, follow_redirects=False, raise_server_exceptions=False)


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_in(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, f"no CSRF field in the page:\n{html[:2000]}"
    return found.group(1)


def log_in(c: TestClient, who: Person) -> str:
    """Log `c` in as `who` through the login form; returns the new session's CSRF token."""
    token = csrf_in(c.get("/login").text)
    response = c.post("/login", data={"csrf": token, "email": who.email, "password": who.password})
    assert response.status_code == 303, response.text
    page = c.get("/account")
    assert page.status_code == 200, page.text
    return csrf_in(page.text)


def add_submission(
    world: World, who: Person, slug: str, *, kind: str = "submit", status: Status | None = Status.PASSED
) -> int:
    """A submission by `who`; with a `status`, graded already (claimed and finished as a worker
    would), else left queued."""
    exercise = world.web.exercise(slug)
    row = submissions.create(
        world.factory, exercise, OWN_SOURCE.encode(), "solution.py", user_id=who.id, kind=kind
    )
    if status is not None:
        assert submissions.claim(world.factory, row.id, 1, WORKER, 60.0)
        verdict = make_verdict(slug, exercise.version, status)
        assert submissions.finish(world.factory, row.id, 1, WORKER, verdict)
    return row.id


def make_verdict(slug: str, version: str, status: Status) -> dict[str, Any]:
    outcome = Outcome.PASSED if status is Status.PASSED else Outcome.FAILED
    verdict = Verdict(
        status=status,
        summary=f"graded by the tests: {status.value}",
        score=1.0 if status is Status.PASSED else 0.0,
        max_score=1.0,
        tests=[
            TestResult(name="test_public_shapes", visibility="public", outcome=Outcome.PASSED),
            TestResult(
                name="test_hidden_values",
                visibility="hidden",
                outcome=outcome,
                message="" if outcome is Outcome.PASSED else "a hidden check failed",
                hint="" if outcome is Outcome.PASSED else "Look at the masked positions.",
            ),
        ],
        provenance=Provenance(
            exercise=slug,
            exercise_version=version,
            submission_sha256=hashlib.sha256(OWN_SOURCE.encode()).hexdigest(),
        ),
    )
    return verdict.model_dump(mode="json")


def count(world: World, model: type[Submission] | type[ExercisePackage]) -> int:
    with world.factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# --- routes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    path: str  # the path template, e.g. /submissions/{submission_id}
    methods: frozenset[str]  # empty for a mount
    mount: bool

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)


PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def app_routes(app: FastAPI) -> list[RouteInfo]:
    """Every route the app serves, included routers flattened, mounts as `/prefix/{path}`."""
    from fastapi import routing

    contexts: Any = getattr(routing, "iter_route_contexts", lambda routes: routes)(app.routes)
    found = []
    for route in contexts:
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if template is None:
            continue
        methods = getattr(route, "methods", None) or set()
        mount = not methods and template.endswith("{path}")
        found.append(RouteInfo(template, frozenset(methods), mount))
    return found


def fill(template: str, values: dict[str, str]) -> str:
    """The template with its path parameters replaced; a parameter without a value fails the
    test, so a new route with a new kind of parameter is noticed, not skipped."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no test value for path parameter {name!r} of {template}: add one"
        return values[name]

    return PARAM.sub(value, template)


def follow(c: TestClient, method: str, url: str, **kwargs: Any) -> tuple[Any, list[str]]:
    """Send a request and follow on-site redirects by hand (at most 5); returns the last response
    and the chain of Location headers."""
    response = c.request(method, url, **kwargs)
    chain: list[str] = []
    while response.status_code in (301, 302, 303, 307, 308) and len(chain) < 5:
        location = response.headers["location"]
        assert location.startswith("/") and not location.startswith("//"), f"{url} redirects off-site"
        chain.append(location)
        response = c.get(location)
    return response, chain


# --- raw ASGI requests -------------------------------------------------------------------------


def raw_get(app: FastAPI, raw_path: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET `raw_path` exactly as a server such as uvicorn would hand it to the app: the path
    percent-decoded, dot segments left alone (an HTTP client would remove them before sending)."""

    async def run() -> tuple[int, bytes]:
        status = 0
        body = bytearray()
        done = anyio.Event()
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        path, _, query = raw_path.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": unquote(path.decode("latin-1")),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"testserver")]
            + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)
        return status, bytes(body)

    return anyio.run(run)


# --- what must never reach a student ------------------------------------------------------------

SAFE_LINE = re.compile(r"^[\x20-\x7e]+$")
ESCAPED = set("&<>\"'\\")  # characters HTML or JSON would escape: a line with one could hide


@dataclass(frozen=True)
class Secret:
    path: str  # relative to the project, e.g. solutions/rope/test_hidden.py
    lines: tuple[str, ...]


def public_text(root: Path = ROOT) -> str:
    """Everything a student may see of every exercise: its public files."""
    return "\n".join(
        p.read_text("utf-8", "replace") for p in sorted((root / "exercises").glob("*/*")) if p.is_file()
    )


def secret_files(root: Path = ROOT) -> list[Path]:
    solutions = root / "solutions"
    return sorted(
        [
            *solutions.glob("*/solution.py"),
            *solutions.glob("*/test_hidden.py"),
            *solutions.glob("*/wrong/*.py"),
        ]
    )


def distinctive_lines(path: Path, public: str, per_file: int = 3) -> tuple[str, ...]:
    """The longest lines of `path` that no public file contains: at least 30 printable ASCII
    characters, 20 of them letters or digits, none that HTML or JSON would escape (so the line
    reads the same in a page, a JSON body or a raw file)."""
    candidates = set()
    # a lesson's Markdown may wrap a line of code that its page shows on one line: compare with
    # the public text's words, whatever whitespace separates them
    words = " ".join(public.split())
    for line in path.read_text("utf-8").splitlines():
        text = line.strip()
        if len(text) < 30 or not SAFE_LINE.match(text) or ESCAPED & set(text):
            continue
        if sum(ch.isalnum() for ch in text) < 20 or text in public or " ".join(text.split()) in words:
            continue
        candidates.add(text)
    return tuple(sorted(candidates, key=lambda t: (-len(t), t))[:per_file])


def secret_lines(root: Path = ROOT) -> list[Secret]:
    public = public_text(root)
    return [
        Secret(str(path.relative_to(root)), distinctive_lines(path, public)) for path in secret_files(root)
    ]


def leaks(body: str, found: list[Secret]) -> list[str]:
    """The secret files that `body` shows a distinctive line of."""
    flat = re.sub(r"<[^>]+>", "", body)  # a highlighted listing splits lines into elements
    return [s.path for s in found if any(line in body or line in flat for line in s.lines)]
