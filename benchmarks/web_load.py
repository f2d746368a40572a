"""Many students at once through the web API: latency of the calls, and no submission lost or
graded twice.

    .venv/bin/python benchmarks/web_load.py [--students 200 | --quick] [--grader-workers 2]
        [--web-workers 1] [--sse-share 0.5] [--submit-share 0.1] [--wrong-share 0.1] [--ramp-s 0]
        [--cold] [--keep] [--deployment URL --database-url URL | --multihost]

Against a deployment on several hosts (docs/operations.md, "Deploying on several hosts"):
`--deployment https://grader.example.org --database-url postgresql+psycopg://...` runs the same
students against that web app and its workers (at least `--grader-workers` of them must be
registered), creating the accounts in, and auditing, its database (only the run's own accounts
and submissions: they carry a tag of the run). `--multihost` stands such a deployment up on this
machine first, as tests/deploy/test_multihost.py does (PostgreSQL, Redis with a password, the
web role and `--grader-workers` worker containers on a private Docker network, the project's
catalog), and removes it afterwards. The course-sized run, 500 students arriving over 10
minutes:

    .venv/bin/python benchmarks/web_load.py --multihost --students 500 --ramp-s 600

The stack is the real one, private to the run: a temporary data directory with its SQLite
database upgraded, a private redis-server on a unix socket, the web app under uvicorn (a
subprocess, `--web-workers` processes) and `--grader-workers` `grader worker` processes (bwrap
sandboxes). The students and their API tokens are created directly in the database before the
clock starts (argon2 hashing of their passwords takes a while; the time is printed). The run
waits for `/healthz` and for every worker to be registered (warmed up), has one submission of
the instructor's graded, not counted (`--cold` skips it: the burst then meets an exercise
version the database has never seen), then lets all students loose at once (`--ramp-s`
spreads them): each POSTs one submission of `causal-masking` to
`/api/v1/submissions` and follows it until it is graded, either on the server-sent events
stream `/api/v1/submissions/{id}/events` until `done` (`--sse-share` of them, then one GET for
the verdict, as the page does) or by polling `GET /api/v1/submissions/{id}` every second.

The mix: most students submit `examples/submissions/attention.py` with kind `public` (the public
tests only: about 1 s of grading in a warm worker), `--submit-share` of them the same file with
kind `submit` (hidden tests and the performance phase), and `--wrong-share` a known-wrong variant
from `solutions/causal-masking/wrong/` with kind `submit`, expecting the verdict its first line
names. Mostly `public` because on a 2-core machine the grading, not the web tier, sets the
length of the run: a full grading takes 4 s alone and 4-13 s under this load (the wrong variants
slowest), so 200 of them would keep two workers busy for well over 10 minutes; this mix keeps
the default run at 5-7 minutes here (50-85 s of it creating the accounts) and still exercises
every path: public and full gradings, the performance phase, failed, rejected and too_slow
verdicts.

Measured on the client: the latency of every call by endpoint (the POST, each status GET, the
time to the first SSE event), the end-to-end time of each submission (from its POST until the
client saw it done), HTTP errors by status code. Checked afterwards in the database: every
created submission is `done` with a verdict, each has exactly one attempt, closed with that
verdict (a retry after an error of ours shows as "retried"; two graded attempts as "graded
twice"), as many submissions as 201 responses, and the verdicts are the expected ones. Exits 1
when a submission was lost, graded twice, ended in system_error or with an unexpected verdict,
or a 5xx came back. The figures depend on what else runs on the machine: none are asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.store import Attempt, Role, Submission, default_url, make_engine, sessions, upgrade  # noqa: E402
from tests.services import RedisServer  # noqa: E402
from web import accounts  # noqa: E402

GRADER = str(Path(sys.executable).with_name("grader"))
SLUG = "causal-masking"
CORRECT = ROOT / "examples" / "submissions" / "attention.py"
WRONG = ROOT / "solutions" / SLUG / "wrong"
POLL_S = 1.0
console = Console(stderr=True)


@dataclass(frozen=True)
class Plan:
    """What one student submits, how they follow it, and the verdict they should get."""

    label: str
    path: Path
    kind: str
    expected: str
    sse: bool


@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: Counter[str] = field(default_factory=Counter)
    end_to_end: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    created: dict[int, Plan] = field(default_factory=dict)
    seen_done: int = 0
    last_done: float = 0.0
    deadline: float = math.inf  # students stop following their submission then

    def call(self, endpoint: str, seconds: float, code: int) -> None:
        self.latency[endpoint].append(seconds)
        self.codes[str(code)] += 1

    def failed(self, what: str, exc: Exception) -> None:
        """A call that got no response (a connection reset, a timeout): by kind and call."""
        self.codes[f"{type(exc).__name__} ({what})"] += 1


def make_plans(args: argparse.Namespace) -> list[Plan]:
    rng = random.Random(args.seed)
    n = args.students
    wrong = round(n * args.wrong_share)
    full = round(n * args.submit_share)
    variants = sorted(WRONG.glob("*.py"))
    rng.shuffle(variants)
    sse = set(rng.sample(range(n), round(n * args.sse_share)))
    order = list(range(n))
    rng.shuffle(order)
    plans = []
    for i, slot in enumerate(order):
        if slot < wrong:
            path = variants[slot % len(variants)]
            plans.append(Plan(f"wrong/{path.stem}", path, "submit", expectation(path), i in sse))
        else:
            kind = "submit" if slot < wrong + full else "public"
            plans.append(Plan(f"correct/{kind}", CORRECT, kind, "passed", i in sse))
    return plans


def expectation(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    if not first.startswith("# expect:"):
        raise SystemExit(f"{path}: the first line does not say the expected verdict")
    return first.split(":", 1)[1].strip()


def create_accounts(factory: Any, count: int, tag: str = "") -> tuple[str, list[str], set[int]]:
    """An instructor's token, one token per student, and the students' user ids. `tag` keeps the
    accounts of runs against one shared database apart."""
    password = secrets.token_urlsafe(12)
    suffix = f"-{tag}" if tag else ""
    teacher = accounts.create_user(
        factory, f"teacher{suffix}@load.example.com", password, f"Load Teacher{suffix}", role=Role.INSTRUCTOR
    )
    tokens, ids = [], set()
    for i in range(count):
        user = accounts.create_user(
            factory, f"student{i:04d}{suffix}@load.example.com", password, f"Student {i}{suffix}"
        )
        tokens.append(accounts.create_token(factory, user.id, "load")[1])
        ids.add(user.id)
    return accounts.create_token(factory, teacher.id, "load")[1], tokens, ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # its own session: Ctrl-C here reaches us, and we stop it
        return subprocess.Popen(args, env=env, stdout=out, stderr=out, start_new_session=True)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 30
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # the group it leads: it and its children
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def wait_ready(base: str, teacher: str, workers: int, processes: list[Any]) -> None:
    deadline = time.monotonic() + 300
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {teacher}"}) as client:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a process of the stack exited early: see its log")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    queue = (await client.get("/api/v1/instructor/queue")).json()
                    if len(queue["workers"]) >= workers:
                        return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("the web app or the workers did not come up within 5 minutes")


async def warm_up(base: str, teacher: str) -> int:
    """One graded submission before the clock starts: the whole path works, the exercise's version
    is in the database, and each worker's first-grading costs stay out of the figures."""
    body = {"exercise": SLUG, "source": CORRECT.read_text(), "filename": "attention.py", "kind": "public"}
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {teacher}"}) as client:
        response = await client.post("/api/v1/submissions", json=body)
        if response.status_code != 201:
            raise SystemExit(f"the warm-up submission was refused: {response.status_code} {response.text}")
        submission = response.json()["id"]
        for _ in range(300):
            row = (await client.get(f"/api/v1/submissions/{submission}")).json()
            if row["state"] in ("done", "system_error"):
                if row["status"] != "passed":
                    raise SystemExit(f"the warm-up submission ended {row['status']}, not passed")
                return int(submission)
            await asyncio.sleep(0.5)
    raise SystemExit("the warm-up submission was not graded within 150 s")


async def student(client: httpx.AsyncClient, token: str, plan: Plan, delay: float, stats: Stats) -> None:
    await asyncio.sleep(delay)
    auth = {"Authorization": f"Bearer {token}"}
    body = {"exercise": SLUG, "source": plan.path.read_text(), "filename": "attention.py", "kind": plan.kind}
    started = time.monotonic()
    try:
        response = await client.post("/api/v1/submissions", json=body, headers=auth)
    except httpx.HTTPError as exc:
        stats.failed("POST", exc)
        return
    stats.call("POST /submissions", time.monotonic() - started, response.status_code)
    if response.status_code != 201:
        return
    submission = response.json()["id"]
    stats.created[submission] = plan
    seen = await follow_events(client, auth, submission, stats) if plan.sse else 0.0
    fetched = await poll(client, auth, submission, stats, first=not plan.sse)  # the verdict
    done = seen or fetched
    if done:
        stats.end_to_end["sse" if plan.sse else "poll"].append(done - started)
        stats.seen_done += 1
        stats.last_done = max(stats.last_done, done)


async def follow_events(
    client: httpx.AsyncClient, auth: dict[str, str], submission: int, stats: Stats
) -> float:
    """Read the event stream until `done`; when it was seen, or 0.0 (then the student polls)."""
    try:
        return await asyncio.wait_for(
            read_events(client, auth, submission, stats), timeout=max(0.0, stats.deadline - time.monotonic())
        )
    except TimeoutError:
        return 0.0


async def read_events(
    client: httpx.AsyncClient, auth: dict[str, str], submission: int, stats: Stats
) -> float:
    started = time.monotonic()
    first = True
    try:
        async with client.stream("GET", f"/api/v1/submissions/{submission}/events", headers=auth) as response:
            stats.codes[str(response.status_code)] += 1
            async for line in response.aiter_lines():
                if line.startswith("event:") and first:
                    stats.latency["SSE first event"].append(time.monotonic() - started)
                    first = False
                if line == "event: done":
                    return time.monotonic()
    except httpx.HTTPError as exc:
        stats.failed("SSE", exc)
    return 0.0


async def poll(
    client: httpx.AsyncClient, auth: dict[str, str], submission: int, stats: Stats, *, first: bool
) -> float:
    """GET the submission every second until it is graded (once, for the verdict, after SSE)."""
    if first:
        await asyncio.sleep(random.uniform(0, POLL_S))  # students are not in step
    while time.monotonic() < stats.deadline:
        started = time.monotonic()
        try:
            response = await client.get(f"/api/v1/submissions/{submission}", headers=auth)
        except httpx.HTTPError as exc:
            stats.failed("GET", exc)
            response = None
        if response is not None:
            stats.call("GET /submissions/{id}", time.monotonic() - started, response.status_code)
            if response.status_code == 200 and response.json()["state"] in ("done", "system_error"):
                return time.monotonic()
            if response.status_code in (401, 403, 404):
                return 0.0
        await asyncio.sleep(POLL_S)
    return 0.0


async def load(base: str, tokens: list[str], plans: list[Plan], ramp_s: float, stats: Stats) -> float:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(120.0, connect=30.0)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        tasks = [
            asyncio.create_task(student(client, token, plan, ramp_s * i / len(plans), stats))
            for i, (token, plan) in enumerate(zip(tokens, plans, strict=True))
        ]
        try:
            while not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=15)
                console.print(
                    f"[dim]{time.monotonic() - started:5.0f} s: {len(stats.created)} created, "
                    f"{stats.seen_done} seen done[/dim]"
                )
        finally:  # on Ctrl-C: every student stops before the client closes
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            task.result()
    return started


@dataclass
class Audit:
    submissions: int = 0
    done: int = 0
    lost: int = 0
    system_error: int = 0
    retried: int = 0
    graded_twice: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)
    queued_s: list[float] = field(default_factory=list)
    grading_s: list[float] = field(default_factory=list)


def audit(factory: Any, created: dict[int, Plan], ignore: set[int], users: set[int] | None = None) -> Audit:
    """What the database says of the run's submissions (of `users` only, when given: a shared
    database holds others)."""
    result = Audit()
    query = select(Submission) if users is None else select(Submission).where(Submission.user_id.in_(users))
    with factory() as session:
        rows = {r.id: r for r in session.scalars(query) if r.id not in ignore}
        attempts: dict[int, list[str | None]] = defaultdict(list)
        for submission_id, outcome in session.execute(select(Attempt.submission_id, Attempt.outcome)):
            attempts[submission_id].append(outcome)
    result.submissions = len(rows)
    for submission_id, plan in created.items():
        row = rows.get(submission_id)
        if row is None or row.state in ("queued", "running") or (row.state == "done" and not row.verdict):
            result.lost += 1
            continue
        if row.state == "system_error":
            result.system_error += 1
            continue
        graded = [o for o in attempts[submission_id] if o not in (None, "lost")]
        result.done += 1
        result.retried += len(attempts[submission_id]) > 1
        result.graded_twice += len(graded) > 1 or graded != [row.status]
        if row.status != plan.expected:
            result.unexpected[f"{plan.label}: {row.status} (expected {plan.expected})"] += 1
        result.queued_s.append(row.queued_s or 0.0)
        result.grading_s.append(row.grading_s or 0.0)
    return result


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def report(args: argparse.Namespace, stats: Stats, result: Audit, wall: float) -> Table:
    responses = stats.codes.get("201", 0)
    summary = Table(title=f"{args.students} students through the web API", show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for name, value in (
        ("students", args.students),
        ("grader workers", args.grader_workers),
        ("web workers", args.web_workers),
        ("submissions in the database / 201s", f"{result.submissions} / {responses}"),
        ("done with a verdict", result.done),
        ("lost", result.lost),
        ("system_error", result.system_error),
        ("retried", result.retried),
        ("graded twice", result.graded_twice),
        ("unexpected verdicts", sum(result.unexpected.values())),
        ("load phase", f"{wall:.0f} s"),
        ("throughput", f"{result.done / wall * 60:.1f} per minute" if wall else "-"),
        ("responses and errors", ", ".join(f"{k}: {v}" for k, v in sorted(stats.codes.items()))),
    ):
        summary.add_row(name, str(value))
    return summary


def latency_table(stats: Stats, result: Audit) -> Table:
    table = Table(title="Latency")
    for column in ("what", "count", "p50", "p99", "max"):
        table.add_column(column, justify="right" if column != "what" else "left")
    rows = [(name, values, 1000.0, "ms") for name, values in stats.latency.items()]
    everything = [v for values in stats.end_to_end.values() for v in values]
    rows += [(f"end to end ({how})", values, 1.0, "s") for how, values in sorted(stats.end_to_end.items())]
    rows += [
        ("end to end (all)", everything, 1.0, "s"),
        ("queue wait (database)", result.queued_s, 1.0, "s"),
        ("grading (database)", result.grading_s, 1.0, "s"),
    ]
    for name, values, scale, unit in rows:
        figures = [percentile(values, p) * scale for p in (50, 99, 100)]
        table.add_row(
            name,
            str(len(values)),
            *(f"{f:.0f} {unit}" if unit == "ms" else f"{f:.1f} {unit}" for f in figures),
        )
    return table


def measure(
    args: argparse.Namespace, base: str, factory: Any, made: Accounts, processes: list[Any], *, shared: bool
) -> tuple[Stats, Audit, float]:
    """Wait for the stack, warm it up, let the students loose, and audit the database (only the
    run's students' submissions when it is `shared`)."""
    asyncio.run(wait_ready(base, made.teacher, args.grader_workers, processes))
    ignore = set() if args.cold else {asyncio.run(warm_up(base, made.teacher))}
    time.sleep(args.settle_s)  # let the warm pools fill
    stats = Stats(deadline=time.monotonic() + args.deadline_s)
    load_started = asyncio.run(load(base, made.tokens, make_plans(args), args.ramp_s, stats))
    wall = (stats.last_done or time.monotonic()) - load_started
    return stats, audit(factory, stats.created, ignore, made.users if shared else None), wall


def accounts_in(args: argparse.Namespace, factory: Any, tag: str = "") -> Accounts:
    started = time.monotonic()
    teacher, tokens, users = create_accounts(factory, args.students, tag)
    console.print(f"[dim]{args.students + 1} accounts in {time.monotonic() - started:.1f} s[/dim]")
    return Accounts(teacher, tokens, users)


@dataclass(frozen=True)
class Accounts:
    """The run's instructor token, its students' tokens and their user ids."""

    teacher: str
    tokens: list[str]
    users: set[int]


def run(args: argparse.Namespace, directory: Path, processes: list[subprocess.Popen[bytes]]) -> bool:
    """The whole stack on this machine, private to the run."""
    redis_server = RedisServer()
    redis_server.start()
    try:
        engine = make_engine(default_url(directory))
        upgrade(engine)
        factory = sessions(engine)
        made = accounts_in(args, factory)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRADER_DATABASE_URL")}
        env |= {"REDIS_URL": redis_server.url, "GRADER_DATA_DIR": str(directory)}
        port = free_port()
        web = [sys.executable, "-m", "uvicorn", "--factory", "web.app:create_app", "--host", "127.0.0.1"]
        web += ["--port", str(port), "--workers", str(args.web_workers), "--no-access-log"]
        processes.append(spawn([*web, "--log-level", "warning"], env, directory / "web.log"))
        for i in range(args.grader_workers):
            processes.append(spawn([GRADER, "worker"], env, directory / f"worker-{i}.log"))
        base = f"http://127.0.0.1:{port}"
        stats, result, wall = measure(args, base, factory, made, processes, shared=False)
        engine.dispose()
    finally:
        stop(processes)
        redis_server.close()
    return conclude(args, stats, result, wall)


def run_deployment(args: argparse.Namespace, base: str, database_url: str) -> bool:
    """Against a deployment's web app; accounts made in, and the audit read from, its database."""
    engine = make_engine(database_url)
    try:
        factory = sessions(engine)
        tag = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
        made = accounts_in(args, factory, tag)
        stats, result, wall = measure(args, base.rstrip("/"), factory, made, [], shared=True)
    finally:
        engine.dispose()
    return conclude(args, stats, result, wall)


def run_multihost(args: argparse.Namespace) -> bool:
    """Stand the roles up in containers on this machine (the multi-host test's layout, with the
    project's catalog and the default lease), run against them, and remove them."""
    from tests.deploy import test_multihost as layout

    with layout.deployed() as deployed:
        pg_password, redis_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        layout.start_services(deployed, pg_password, redis_password, publish_pg=True)
        env = layout.grader_env(pg_password, redis_password, catalog=ROOT, lease_s="60")
        layout.start_web(deployed, env)
        with httpx.Client(base_url=deployed.base_url, timeout=10) as client:  # the schema is current
            layout.until(
                "the web container answers /healthz",
                lambda: client.get("/healthz").status_code == 200,
                deployed,
                timeout=90,
            )
        for i in range(args.grader_workers):
            layout.start_worker(deployed, f"w{i + 1}", env)
        console.print(
            f"[dim]{args.grader_workers} worker containers, web at {deployed.base_url}, "
            f"PostgreSQL on 127.0.0.1:{deployed.pg_port}[/dim]"
        )
        url = f"postgresql+psycopg://grader:{pg_password}@127.0.0.1:{deployed.pg_port}/grader"
        try:
            return run_deployment(args, deployed.base_url, url)
        except BaseException:
            console.print(deployed.logs(), markup=False)
            raise


def conclude(args: argparse.Namespace, stats: Stats, result: Audit, wall: float) -> bool:
    out = Console()
    out.print(report(args, stats, result, wall))
    out.print(latency_table(stats, result))
    for what, count in sorted(result.unexpected.items()):
        out.print(f"unexpected verdict: {what} x{count}")
    problems = failures(stats, result)
    out.print(
        "FAILED: " + "; ".join(problems) if problems else "OK: nothing lost, nothing graded twice, no 5xx"
    )
    return not problems


def failures(stats: Stats, result: Audit) -> list[str]:
    server_errors = sum(n for code, n in stats.codes.items() if code.startswith("5"))
    counts = {
        "lost": result.lost,
        "graded twice": result.graded_twice,
        "ended in system_error": result.system_error,
        "with an unexpected verdict": sum(result.unexpected.values()),
        "5xx responses": server_errors,
    }
    problems = [f"{n} {what}" for what, n in counts.items() if n]
    created = stats.codes.get("201", 0)
    if result.submissions != created:
        problems.append(f"{result.submissions} submissions in the database for {created} 201 responses")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 students: a fast check")
    parser.add_argument("--grader-workers", type=int, default=2)
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--sse-share", type=float, default=0.5, help="students who follow the event stream")
    parser.add_argument("--submit-share", type=float, default=0.1, help="correct files graded in full")
    parser.add_argument("--wrong-share", type=float, default=0.1, help="known-wrong files, graded in full")
    parser.add_argument("--ramp-s", type=float, default=0.0, help="spread the students' starts over this")
    parser.add_argument(
        "--cold", action="store_true", help="no warm-up submission: the burst meets an exercise never seen"
    )
    parser.add_argument("--settle-s", type=float, default=5.0, help="pause once the workers are up")
    parser.add_argument("--deadline-s", type=float, default=1800.0, help="students give up after this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the data directory and the logs")
    parser.add_argument(
        "--deployment", metavar="URL", help="a deployment's web app, instead of a local stack"
    )
    parser.add_argument(
        "--database-url", metavar="URL", help="with --deployment: its database (accounts and the audit)"
    )
    parser.add_argument(
        "--multihost", action="store_true", help="stand the roles up in Docker containers here, and use them"
    )
    args = parser.parse_args()
    if args.quick:
        args.students = 20
    if args.deployment and not args.database_url:
        parser.error("--deployment needs --database-url: the accounts are made in, and audited from, it")
    if args.database_url and not args.deployment:
        parser.error("--database-url goes with --deployment")
    if args.multihost and args.deployment:
        parser.error("--multihost stands its own deployment up: leave out --deployment")
    if args.deployment or args.multihost:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            ok = (
                run_multihost(args)
                if args.multihost
                else run_deployment(args, args.deployment, args.database_url)
            )
        except KeyboardInterrupt:
            console.print("interrupted: nothing was measured")
            sys.exit(130)
        sys.exit(0 if ok else 1)
    directory = Path(tempfile.mkdtemp(prefix="grader-web-load-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    processes: list[subprocess.Popen[bytes]] = []
    code = 1
    try:
        code = 0 if run(args, directory, processes) else 1
    except KeyboardInterrupt:
        console.print("interrupted: the stack is stopped, nothing was measured")
        code = 130
    finally:
        stop(processes)
        if args.keep or code == 1:
            console.print(f"data directory and logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
