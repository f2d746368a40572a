"""Real Redis and PostgreSQL servers, private to one test session.

Each is started from Debian's binaries in a temporary folder, listening on a unix socket only,
and removed at the end. A missing binary fails the suite with what to install: the test command
installs both (`scripts/setup.sh --services`).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary) or next(iter(sorted(glob.glob(binary))), None)
    if path is None:
        pytest.fail(f"{binary} is required by this suite: install Debian's {package}")
    return path


class RedisServer:
    def __init__(self) -> None:
        self.binary = _need("redis-server", "redis-server")
        self.directory = Path(tempfile.mkdtemp(prefix="grader-redis-"))
        self.socket = self.directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        # No persistence: a restart loses every queued job, the hardest case for the queue.
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(self.answers, "redis-server")

    def answers(self) -> bool:
        """Redis answers PING (its socket file appears when it binds, before it listens)."""
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(1)
                conn.connect(str(self.socket))
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        self.socket.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class PostgresServer:
    """A cluster of its own, run as Debian's `postgres` user (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        bindir = Path(_need("/usr/lib/postgresql/*/bin/initdb", "postgresql")).parent
        self.initdb, self.pg_ctl = bindir / "initdb", bindir / "pg_ctl"
        try:
            self.user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("the postgres system user is missing: reinstall Debian's postgresql")
        self.directory = Path(tempfile.mkdtemp(prefix="grader-pg-"))
        os.chown(self.directory, self.user.pw_uid, self.user.pw_gid)
        self.data = self.directory / "data"
        self.names = itertools.count(1)

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(
            [
                "setpriv",
                f"--reuid={self.user.pw_uid}",
                f"--regid={self.user.pw_gid}",
                "--clear-groups",
                *argv,
            ],
            check=True,
            capture_output=True,
            cwd=self.directory,
        )

    def start(self) -> None:
        self._as_postgres(
            str(self.initdb), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"
        )
        options = f"-k {self.directory} -c listen_addresses='' -c fsync=off -c max_connections=200"
        self._as_postgres(
            str(self.pg_ctl),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.directory}"

    def new_database(self) -> str:
        import psycopg

        name = f"grader_test_{os.getpid()}_{next(self.names)}"
        with psycopg.connect(f"dbname=postgres user=postgres host={self.directory}", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self._as_postgres(str(self.pg_ctl), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _wait_for(ready: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start within {timeout:g} s")
        time.sleep(0.02)


QUEUE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "queue"


def queue_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of `grader` commands run against these services and the queue's fixture
    exercise (`quick-sum`)."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "GRADER_EXERCISES_DIR": str(QUEUE_FIXTURES / "exercises"),
        "GRADER_SOLUTIONS_DIR": str(QUEUE_FIXTURES / "solutions"),
        **extra,
    }


def sandbox_strays(worker_pid: int) -> list[int]:
    """Sandbox processes still alive in the cgroups a worker (pid `worker_pid`) created."""
    from sandbox import cgroups
    from sandbox.uids import UidPool

    pool = UidPool.from_env()
    mine = f"/{cgroups.PARENT}/g{worker_pid}-"
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{entry}").st_uid in pool and mine in Path(f"/proc/{entry}/cgroup").read_text():
                found.append(int(entry))
        except OSError:
            continue
    return found


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a server's log, for a failure's message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
