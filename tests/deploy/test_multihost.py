"""Several hosts, proven on one machine: the web role, two worker containers, PostgreSQL and Redis
(with a password) in containers of their own on a private Docker network, as deploy/ lays them
out. The workers share no disk with the web container (each has its own GRADER_DATA_DIR), so an
uploaded exercise version reaches them only through the database, by its content hash.

Submissions go in through the JSON API; one worker container is killed (`docker kill`) while it
grades, and the survivor takes the submission back once its lease runs out. Every submission
ends with the verdict its source deserves, and the uploaded version is validated, published and
graded on a worker.

The images are built as deploy/build-local.sh builds them (no registry): mount points only, with
this host's /usr, /etc, Python and the project bound read-only. Every container, the network and
the image carry a name unique to the run, and are removed however the test ends.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import secrets
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.sandbox, pytest.mark.deploy]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
PYTHON_HOME = Path(sys.base_prefix)  # the interpreter the project's venv was made from
VENV = Path(sys.prefix)
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/usr/lib/postgresql/15/bin"))
UID_DIR = Path(os.environ.get("GRADER_SANDBOX_UID_DIR", "/run/grader-uids"))

GOOD = "def row_sums(rows):\n    return [sum(r) for r in rows]\n"
WRONG = "def row_sums(rows):\n    return [r[0] if r else 0.0 for r in rows]\n"
SLOW = "import time\n\ndef row_sums(rows):\n    time.sleep(4)\n    return [sum(r) for r in rows]\n"
TOY_SOLUTION = (FIXTURES / "catalog" / "solutions" / "toy-sum" / "solution.py").read_text()

# bubblewrap inside a container: its namespaces (SYS_ADMIN, NET_ADMIN for the loopback), no
# seccomp or AppArmor profile of Docker's in the way, /proc and /sys unmasked, the host's cgroup
# tree writable for the memory and pids limits, the host's pid namespace (the cgroups' owners
# are host pids, as for every other worker of the host) and the host's sandbox uid locks
WORKER_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--pid", "host",
    "-v", f"{UID_DIR}:/run/grader-uids",
]  # fmt: skip
DEADLINE_S = 180.0
PSQL = ("-h", "/var/run/postgresql", "-U", "grader", "-d", "grader", "-tA")


def docker(*args: str, check: bool = True, timeout: float = 120, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class Deployment:
    """The containers of one run; `logs()` gathers what they printed, for a failure's message."""

    prefix: str
    image: str
    network: str
    containers: list[str] = field(default_factory=list)
    base_url: str = ""
    pg_port: int = 0
    killed: set[str] = field(default_factory=set)

    def name(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def run(self, role: str, *args: str, user: str | None = None) -> str:
        argv = ["run", "-d", "--name", self.name(role), "--hostname", role, "--network", self.network]
        argv += ["--network-alias", role, "--label", f"grader.test={self.prefix}"]
        if user:
            argv += ["--user", user]
        self.containers.append(self.name(role))
        return docker(*argv, *args)

    def exited(self) -> list[str]:
        """The containers that stopped though the test did not kill them."""
        running = {c: docker("inspect", "-f", "{{.State.Running}}", c, check=False) for c in self.containers}
        return [c for c, up in running.items() if c not in self.killed and up != "true"]

    def logs(self) -> str:
        parts = []
        for container in self.containers:
            done = subprocess.run(
                ["docker", "logs", "--tail", "40", container], capture_output=True, text=True, check=False
            )
            parts.append(f"--- {container}\n{done.stdout.strip()}\n{done.stderr.strip()}")
        return "\n".join(parts)


def host_binds() -> list[str]:
    """This host's runtime, read-only: what the `docker import` image has mount points for."""
    binds = ["/usr:/usr:ro", "/etc:/etc:ro", f"{ROOT}:{ROOT}:ro"]
    for path in {PYTHON_HOME, VENV}:
        if not path.is_relative_to(ROOT) and not path.is_relative_to("/usr"):
            binds.append(f"{path}:{path}:ro")
    return [flag for bind in binds for flag in ("-v", bind)]


def grader_env(
    pg_password: str, redis_password: str, catalog: Path | None = None, lease_s: str = "6"
) -> list[str]:
    """The roles' settings; `catalog` (with exercises/ and solutions/) defaults to the queue's
    fixture catalog, whose gradings are quick."""
    catalog = catalog or FIXTURES / "queue"
    env = {
        "DATABASE_URL": f"postgresql+psycopg://grader:{pg_password}@pg:5432/grader",
        "REDIS_URL": f"redis://:{redis_password}@redis:6379/0",
        "GRADER_DATA_DIR": "/data",
        "HOME": "/data",
        "GRADER_EXERCISES_DIR": str(catalog / "exercises"),
        "GRADER_SOLUTIONS_DIR": str(catalog / "solutions"),
        # short, so that the killed worker's submission comes back soon; renewed every 2 s
        "GRADER_LEASE_S": lease_s,
        "GRADER_RECONCILE_EVERY_S": "2",
        "GRADER_SANDBOX": "bwrap",
    }
    return [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    with deployed() as made:
        yield made


@contextlib.contextmanager
def deployed() -> Iterator[Deployment]:
    """An image, a network and (as they are started) containers, all removed on the way out."""
    prefix = f"grader-mh-{os.getpid()}-{secrets.token_hex(3)}"
    image = f"grader-host:{prefix}"
    built = subprocess.run(
        ["bash", str(ROOT / "deploy" / "build-local.sh"), image], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, f"deploy/build-local.sh failed: {built.stderr}"
    UID_DIR.mkdir(mode=0o700, exist_ok=True)
    deployed = Deployment(prefix, image, prefix)
    try:
        docker("network", "create", "--label", f"grader.test={prefix}", deployed.network)
        yield deployed
    finally:
        for container in deployed.containers:
            docker("rm", "--force", "--volumes", container, check=False)
        docker("network", "rm", deployed.network, check=False)
        docker("rmi", "--force", image, check=False)


def start_services(d: Deployment, pg_password: str, redis_password: str, *, publish_pg: bool = False) -> None:
    """PostgreSQL (role and database `grader`, scram-sha-256) and Redis (`requirepass`);
    `publish_pg` also publishes PostgreSQL on a loopback port of this host (`d.pg_port`)."""
    postgres = pwd.getpwnam("postgres")
    owner = f"{postgres.pw_uid}:{postgres.pw_gid}"
    # initdb with UTF-8: a cluster made without a locale is SQL_ASCII, which psycopg cannot read
    script = (
        f"printf '%s' \"$PG_PASSWORD\" > /tmp/pw && {PG_BIN}/initdb -D /data/pg -U grader -E UTF8 "
        "--locale=C.UTF-8 --auth-host=scram-sha-256 --auth-local=trust --pwfile=/tmp/pw >/dev/null && "
        "rm /tmp/pw && "
        "echo 'host all all all scram-sha-256' >> /data/pg/pg_hba.conf && "
        f"{PG_BIN}/postgres -D /data/pg -c listen_addresses='*' -c fsync=off & "
        "for i in $(seq 100); do sleep 0.2; "
        f"{PG_BIN}/pg_isready -q -h /var/run/postgresql && break; done; "
        f"{PG_BIN}/createdb -h /var/run/postgresql -U grader grader && wait"
    )
    d.run(
        "pg",
        "--tmpfs", f"/data:uid={postgres.pw_uid},mode=0700",
        "--tmpfs", f"/var/run/postgresql:uid={postgres.pw_uid}",
        "--tmpfs", "/tmp",
        "-e", f"PG_PASSWORD={pg_password}",
        *(["-p", "127.0.0.1::5432"] if publish_pg else []),
        *host_binds(), d.image, "sh", "-c", script,
        user=owner,
    )  # fmt: skip
    if publish_pg:
        d.pg_port = int(docker("port", d.name("pg"), "5432/tcp").splitlines()[0].rsplit(":", 1)[1])
    d.run(
        "redis",
        *host_binds(), d.image,
        "redis-server", "--requirepass", redis_password, "--save", "", "--appendonly", "no",
        "--protected-mode", "no", "--bind", "0.0.0.0",
        user="65534:65534",
    )  # fmt: skip


def start_web(d: Deployment, env: list[str]) -> None:
    python = VENV / "bin" / "python"
    script = (
        f"{VENV}/bin/grader db upgrade && exec {python} -m uvicorn --factory web.app:create_app "
        "--host 0.0.0.0 --port 8000 --proxy-headers --no-access-log"
    )
    until(
        "PostgreSQL serves the database `grader`",
        lambda: "1" in docker("exec", d.name("pg"), f"{PG_BIN}/psql", *PSQL, "-c", "select 1", check=False),
        d,
        timeout=60,
    )
    d.run(
        "web",
        "--tmpfs", "/data", "--tmpfs", "/tmp", "-w", str(ROOT), "-p", "127.0.0.1::8000",
        *env, *host_binds(), d.image, "sh", "-c", script,
    )  # fmt: skip
    port = docker("port", d.name("web"), "8000/tcp").splitlines()[0].rsplit(":", 1)[1]
    d.base_url = f"http://127.0.0.1:{port}"


def start_worker(d: Deployment, role: str, env: list[str]) -> None:
    d.run(
        role,
        "--tmpfs", "/data:exec", "--tmpfs", "/tmp:exec", "-w", str(ROOT),
        *WORKER_FLAGS, *env, *host_binds(), d.image,
        f"{VENV}/bin/grader", "worker", "--sandbox", "bwrap",
    )  # fmt: skip


def until(what: str, check: Callable[[], Any], d: Deployment, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stopped := d.exited():
            raise AssertionError(f"{what}: {', '.join(stopped)} stopped\n{d.logs()}")
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s\n{d.logs()}")


def account(d: Deployment, client: httpx.Client, email: str, role: str) -> dict[str, str]:
    """An account made with `grader user create` in the web container, and its API token."""
    password = secrets.token_urlsafe(16)
    made = docker(
        "exec", "-i", d.name("web"), f"{VENV}/bin/grader", "user", "create", email,
        "--name", email.split("@")[0], "--role", role, "--password-stdin",
        stdin=password + "\n",
    )  # fmt: skip
    assert f"created {role}" in made, made
    response = client.post("/api/v1/tokens", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def toy_package() -> bytes:
    """The fixture catalog's `toy-sum` as an upload (an exercise this deployment's catalog lacks),
    without its two slow wrong variants."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for base, prefix in (
            (FIXTURES / "catalog" / "exercises" / "toy-sum", "exercise"),
            (FIXTURES / "catalog" / "solutions" / "toy-sum", "solutions"),
        ):
            for path in sorted(base.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    if path.name not in ("loop.py", "materialize.py"):
                        archive.writestr(f"{prefix}/{path.relative_to(base)}", path.read_bytes())
    return buffer.getvalue()


def test_web_and_two_workers_on_a_network_survive_a_killed_worker(deployment: Deployment) -> None:
    d = deployment
    started = time.monotonic()
    pg_password, redis_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    start_services(d, pg_password, redis_password)
    env = grader_env(pg_password, redis_password)
    start_web(d, env)

    # Redis refuses a client without the password
    refused = docker(
        "exec", d.name("redis"), "redis-cli", "-h", "redis", "ping", check=False
    )  # fmt: skip
    assert "NOAUTH" in refused, refused

    with httpx.Client(base_url=d.base_url, timeout=30) as client:
        until("the web container answers /healthz", lambda: client.get("/healthz").status_code == 200, d, 90)
        for role in ("w1", "w2"):  # once the web role has brought the schema up to date
            start_worker(d, role, env)
        teacher = account(d, client, "prof@deploy.example.com", "instructor")
        student = account(d, client, "sam@deploy.example.com", "student")

        def workers() -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = client.get("/api/v1/instructor/queue", headers=teacher).json()[
                "workers"
            ]
            return listed

        until("both workers register", lambda: len(workers()) >= 2, d, 120)
        assert sorted(w["name"].split(":")[0] for w in workers()) == ["w1", "w2"]

        # an uploaded version lives only in the database: a worker fetches it by its hash
        uploaded = client.post(
            "/api/v1/instructor/packages", files={"file": ("toy.zip", toy_package())}, headers=teacher
        )
        assert uploaded.status_code == 201, uploaded.text
        package = uploaded.json()["id"]

        def validated() -> dict[str, Any] | None:
            row: dict[str, Any] = client.get(f"/api/v1/instructor/packages/{package}", headers=teacher).json()
            return row if row["state"] not in ("queued", "validating") else None

        row = until("the uploaded version is validated", validated, d)
        assert row["state"] == "valid", (row["message"], row["report"])
        published = client.post(f"/api/v1/instructor/packages/{package}/publish", headers=teacher)
        assert published.status_code == 200 and published.json()["state"] == "published", published.text

        def submit(exercise: str, source: str) -> int:
            response = client.post(
                "/api/v1/submissions", json={"exercise": exercise, "source": source}, headers=student
            )
            assert response.status_code == 201, response.text
            return int(response.json()["id"])

        def state(submission: int) -> dict[str, Any]:
            row: dict[str, Any] = client.get(f"/api/v1/submissions/{submission}", headers=student).json()
            return row

        # the slow one starts; the worker grading it is killed, container and all
        slow = submit("quick-sum", SLOW)
        until("the slow submission is graded", lambda: state(slow)["state"] == "running", d)
        busy = until("a worker reports its job", lambda: [w for w in workers() if w["current_job"]], d)
        assert len(busy) == 1, busy
        victim = busy[0]["name"].split(":")[0]
        d.killed.add(d.name(victim))
        docker("kill", d.name(victim))
        survivor = {"w1": "w2", "w2": "w1"}[victim]

        expected = {slow: "passed"}
        # the per-user limit keeps 3 in flight: submit as earlier ones finish
        for exercise, source, verdict in (
            ("quick-sum", GOOD, "passed"),
            ("quick-sum", WRONG, "failed"),
            ("toy-sum", TOY_SOLUTION, "passed"),
            ("quick-sum", GOOD, "passed"),
        ):
            until(
                "room under the per-user limit",
                lambda: sum(state(s)["state"] in ("queued", "running") for s in expected) < 3,
                d,
            )
            expected[submit(exercise, source)] = verdict

        def finished() -> dict[int, dict[str, Any]] | None:
            rows = {s: state(s) for s in expected}
            return rows if all(r["state"] in ("done", "system_error") for r in rows.values()) else None

        rows = until("every submission is graded", finished, d)
        got = {s: (r["state"], r["status"]) for s, r in rows.items()}
        assert got == {s: ("done", v) for s, v in expected.items()}, f"{got}\n{d.logs()}"
        # the killed worker's submission was delivered again, and graded once, by the survivor
        assert rows[slow]["attempt"] >= 2, rows[slow]
        alive = [w["name"].split(":")[0] for w in workers() if w["name"].split(":")[0] == survivor]
        assert alive == [survivor]

    # the attempts, as the database recorded them: every submission graded exactly once, the
    # killed worker's attempt lost and the next one graded by the survivor
    listed = docker(
        "exec", d.name("pg"), f"{PG_BIN}/psql", *PSQL, "-F", " ", "-c",
        "select submission_id, split_part(worker, ':', 1), coalesce(outcome, '-') from attempts "
        "order by submission_id, number",
    )  # fmt: skip
    attempts: dict[int, list[tuple[str, str]]] = {}
    for line in listed.splitlines():
        number, host, outcome = line.split()
        attempts.setdefault(int(number), []).append((host, outcome))
    assert sorted(attempts) == sorted(expected), attempts
    assert attempts[slow] == [(victim, "lost"), (survivor, "passed")], attempts[slow]
    for graded_id, verdict in expected.items():
        graded = [outcome for _, outcome in attempts[graded_id] if outcome != "lost"]
        assert graded == [verdict], (graded_id, attempts[graded_id])
    print(f"multi-host deployment test: {time.monotonic() - started:.0f} s")
