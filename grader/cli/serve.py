"""`grader serve`: the web app, its grading workers and a private Redis, on one machine with no
configuration.

Everything lives under the data directory (GRADER_DATA_DIR, ./var by default): the SQLite
database, Redis's unix socket, the demo logins and the logs. REDIS_URL and DATABASE_URL, when
set, point at shared services instead. Redis and the workers are children of this process in
sessions of their own (a Ctrl-C in the terminal reaches only this process, which stops them in
order: web, workers, Redis); each gets SIGTERM when this process dies, even by SIGKILL
(PR_SET_PDEATHSIG), so nothing is left running. Redis keeps nothing on disk: the database is the
truth, and the workers' reconciler enqueues again whatever a restart lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Annotated, Any

import typer
from rich.markup import escape

from grader.cli.app import CliError, State, app, err, handled, out
from grader.cli.queue import _safe_url
from grader.settings import Settings

PR_SET_PDEATHSIG = 1
REDIS_START_S = 10.0
REDIS_STOP_S = 5.0
WORKER_STOP_S = 15.0  # a worker finishes the submission it is grading, then exits
GRACEFUL_S = 5  # open requests (event streams) get this long once the web server stops
STEADY_S = 60.0  # a worker that ran this long before exiting was not failing at start
MAX_RESTART_DELAY_S = 60.0
UNIX_PATH_MAX = 108


def _say(text: str) -> None:
    out.print(text, markup=False, soft_wrap=True)


def default_workers() -> int:
    """One worker on a machine of two CPUs or fewer, else one per CPU but one (at most four)."""
    cpus = len(os.sched_getaffinity(0))
    return 1 if cpus <= 2 else min(4, cpus - 1)


def _die_with_parent() -> Callable[[], None]:
    """A `preexec_fn`: the child gets SIGTERM when this process dies, however it dies."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the child
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(int(signal.SIGTERM)), 0, 0, 0)
        if os.getppid() != parent:  # it died before the signal was armed
            os._exit(1)

    return arm


def _spawn(argv: list[str], log: IO[bytes], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent(),
    )


def _end_all(processes: list[subprocess.Popen[bytes]], timeout: float, hurry: Callable[[], bool]) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds (or at once when `hurry` turns true)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline and not hurry():
        time.sleep(0.05)
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def _how(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


# --- one server per data directory, and its port ----------------------------------------------


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """Hold `<data_dir>/serve.lock` while serving: a second `grader serve` there is refused."""
    fd = os.open(data_dir / "serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise CliError(
                f"`grader serve` is already running on {data_dir} (pid {holder}): stop it first, "
                "or set GRADER_DATA_DIR to another folder",
                1,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _listen(host: str, port: int) -> socket.socket:
    """The web server's socket, bound and listening before any child starts."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on {host!r}: {exc.strerror}", 2) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is already in use: stop what listens there, or choose another --port",
                1,
            ) from None
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}", 1) from None
    return sock


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


# --- Redis ------------------------------------------------------------------------------------


def _answers(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class PrivateRedis:
    """A redis-server of this process's own, listening only on a unix socket (mode 700) in the
    data directory, with no persistence."""

    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.data_dir / "logs" / "redis.log"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise CliError(
                "redis-server is not installed: install Debian's redis-server package "
                "(apt-get install redis-server), or point REDIS_URL at a Redis",
                1,
            )
        if len(os.fsencode(self.socket)) >= UNIX_PATH_MAX:
            raise CliError(f"{self.socket} is too long for a unix socket: set a shorter GRADER_DATA_DIR", 1)
        if os.path.lexists(self.socket):
            if _answers(self.url):
                raise CliError(
                    f"a Redis already answers on {self.socket}: another `grader serve` uses "
                    f"{self.data_dir}; stop it first",
                    1,
                )
            self.socket.unlink()  # left behind by a server that was killed
        directory = self.data_dir / "redis"
        directory.mkdir(mode=0o700, exist_ok=True)
        argv = [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        argv += ["--dir", str(directory), "--save", "", "--appendonly", "no", "--daemonize", "no"]
        with self.log.open("ab") as log:
            self.process = _spawn(argv, log)
        deadline = time.monotonic() + REDIS_START_S
        while not _answers(self.url):
            code = self.process.poll()
            if code is not None:
                raise CliError(f"redis-server stopped at start ({_how(code)}): see {self.log}", 1)
            if time.monotonic() > deadline:
                raise CliError(f"redis-server did not answer within {REDIS_START_S:g} s: see {self.log}", 1)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            _end_all([self.process], REDIS_STOP_S, lambda: False)
            self.process = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _redis(stack: contextlib.ExitStack, settings: Settings) -> str:
    """REDIS_URL when it is set (and answers), else a private Redis started here."""
    if os.environ.get("REDIS_URL") or os.environ.get("GRADER_REDIS_URL"):
        if not _answers(settings.redis_url):
            raise CliError(f"cannot reach Redis at {_without_password(settings.redis_url)} (REDIS_URL)", 1)
        _say(f"redis:    {_without_password(settings.redis_url)} (REDIS_URL)")
        return settings.redis_url
    redis = PrivateRedis(settings.data_dir)
    stack.callback(redis.stop)
    redis.start()
    _say(f"redis:    private redis-server on {redis.socket} (log: {redis.log})")
    return redis.url


# --- the database and the demo accounts -------------------------------------------------------


def _database(settings: Settings) -> None:
    """Bring the schema up to date; on a database with no account yet, create the demo logins."""
    from grader.library import backfill_archives
    from grader.store import DatabaseError, make_engine, sessions, upgrade
    from web.accounts import seed_demo

    url = settings.database()
    try:
        engine = make_engine(url)
        upgrade(engine)
    except DatabaseError as exc:
        raise CliError(str(exc), 1) from None
    _say(f"database: {_safe_url(url)}")
    try:
        for problem in backfill_archives(sessions(engine), settings.data_dir):
            _say(f"not stored in the database: {problem}")
        logins = seed_demo(sessions(engine), settings.data_dir)
    finally:
        engine.dispose()
    kept = settings.data_dir / "demo-logins.txt"
    if logins:
        _say(f"demo logins (kept in {kept}):")
        for login in logins:
            _say(f"  {login.role}: {login.email}  password: {login.password}")
    elif kept.is_file():
        _say(f"demo logins: in {kept}")


# --- workers ----------------------------------------------------------------------------------


def _sandbox(name: str) -> str:
    """The backend the workers will use ("auto" resolved), checked to work here."""
    from sandbox import SandboxRefused, SandboxUnavailable, select_backend

    try:
        backend = select_backend(name, untrusted=True)
    except SandboxRefused as exc:
        raise CliError(str(exc), 2) from None
    except SandboxUnavailable as exc:
        raise CliError(f"no usable sandbox for the workers: {exc}", 1) from None
    backend.close()
    return backend.name


@dataclass
class Worker:
    number: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # exits in a row soon after starting
    restart_at: float | None = None


class Workers:
    """`grader worker` child processes, each restarted when it exits, later each time it keeps
    failing soon after starting."""

    def __init__(self, count: int, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.workers = [Worker(n, logs / f"worker-{n}.log") for n in range(1, count + 1)]

    def start(self) -> None:
        for worker in self.workers:
            self._start(worker)

    def _start(self, worker: Worker) -> None:
        with worker.log.open("ab") as log:
            worker.process = _spawn([sys.executable, "-m", "grader", "worker"], log, self.env)
        worker.started = time.monotonic()
        worker.restart_at = None

    def check(self) -> None:
        """Restart the workers that exited, once their delay is over."""
        now = time.monotonic()
        for worker in self.workers:
            code = worker.process.poll() if worker.process is not None else None
            if code is not None:
                ran = now - worker.started
                worker.failures = 0 if ran >= STEADY_S else worker.failures + 1
                delay = min(MAX_RESTART_DELAY_S, 2.0**worker.failures)
                worker.process, worker.restart_at = None, now + delay
                err.print(
                    f"[yellow]worker {worker.number} stopped ({_how(code)}) after {ran:.0f} s; "
                    f"restarting it in {delay:g} s[/yellow] (log: {escape(str(worker.log))})",
                    soft_wrap=True,
                )
            elif worker.process is None and worker.restart_at is not None and now >= worker.restart_at:
                self._start(worker)

    def stop(self, hurry: Callable[[], bool]) -> None:
        running = [w.process for w in self.workers if w.process is not None]
        _end_all(running, WORKER_STOP_S, hurry)
        for worker in self.workers:
            worker.process, worker.restart_at = None, None


def _worker_env(settings: Settings, sandbox: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "GRADER_DATA_DIR": str(settings.data_dir),
        "GRADER_SANDBOX": sandbox,
        "GRADER_EXERCISES_DIR": str(settings.exercises_dir.resolve()),
        "GRADER_SOLUTIONS_DIR": str(settings.solutions_dir.resolve()),
        "PYTHONUNBUFFERED": "1",
    }


# --- the web server and stopping --------------------------------------------------------------


class Stopper:
    """SIGINT and SIGTERM: before the web server runs, stop at once; while it runs, let it stop
    gracefully; once stopping, hurry (workers are killed rather than waited for)."""

    def __init__(self) -> None:
        self.server: Any = None
        self.stopping = False
        self.hurry = False
        self.deferring = False
        self.pending = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.deferring:
            self.pending = True
        elif self.stopping:
            self.hurry = True
        elif self.server is not None:
            self.server.should_exit = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A signal waits until the block is done (demo accounts half created would have no
        logins kept)."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending:
            raise KeyboardInterrupt


async def _watch(
    server: Any, listener: socket.socket, workers: Workers, announce: Callable[[], None]
) -> None:
    serving = asyncio.ensure_future(server.serve(sockets=[listener]))
    announced = False
    while not serving.done():
        if server.started and not announced:
            announce()
            announced = True
        workers.check()
        await asyncio.wait({serving}, timeout=0.2)
    serving.result()


def _web(settings: Settings, listener: socket.socket, workers: Workers, stopper: Stopper, url: str) -> None:
    import uvicorn

    from grader.store import DatabaseError
    from web.app import create_app

    try:
        web_app = create_app(settings)
    except DatabaseError as exc:
        raise CliError(str(exc), 1) from None
    config = uvicorn.Config(
        web_app, log_level="warning", access_log=False, timeout_graceful_shutdown=GRACEFUL_S
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        _say(f"web:      {url}")
        _say(f"API docs: {url}docs")
        _say(f"OpenAPI:  {url}openapi.json")
        _say("Ctrl-C stops the web server, the workers and Redis.")

    stopper.server = server
    try:
        asyncio.run(_watch(server, listener, workers, announce))
    except SystemExit:  # uvicorn's way of saying the app did not start
        raise CliError("the web app did not start (see the messages above)", 1) from None


@app.command()
@handled
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one)")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0, help="Grading workers to run (default: 1 on 2 CPUs or fewer, else CPUs - 1, at most 4)"
        ),
    ] = None,
    sandbox: Annotated[
        str | None, typer.Option(help="The workers' sandbox: auto (bwrap, else docker), bwrap or docker")
    ] = None,
) -> None:
    """Run the web app with its grading workers and (unless REDIS_URL is set) a private Redis,
    all on this machine, with state under GRADER_DATA_DIR (./var). Ctrl-C stops everything."""
    state: State = ctx.obj
    settings = state.settings
    settings.data_dir = settings.data_dir.expanduser().resolve()
    count = default_workers() if workers is None else workers
    stopper = Stopper()
    previous = {sig: signal.signal(sig, stopper) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as stack:
            try:
                _serve(stack, settings, host, port, count, sandbox or settings.sandbox, stopper)
            finally:
                stopper.stopping = True
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    err.print("stopped")


def _serve(
    stack: contextlib.ExitStack,
    settings: Settings,
    host: str,
    port: int,
    count: int,
    sandbox: str,
    stopper: Stopper,
) -> None:
    data_dir = settings.data_dir
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    stack.enter_context(_exclusive(data_dir))
    backend = _sandbox(sandbox) if count else ""
    listener = stack.enter_context(_listen(host, port))
    _say(f"data:     {data_dir}")
    settings.redis_url = _redis(stack, settings)
    with stopper.deferred():
        _database(settings)
    pool = Workers(count, _worker_env(settings, backend), data_dir / "logs")
    stack.callback(pool.stop, lambda: stopper.hurry)
    pool.start()
    if count:
        _say(f"workers:  {count} (sandbox {backend}), output in {data_dir / 'logs'}/worker-<n>.log")
    else:
        _say("workers:  none here (--workers 0): run `grader worker` on this Redis and database")
    _web(settings, listener, pool, stopper, base_url(host, listener.getsockname()[1]))
