"""Shared fixtures. Services the suite needs (bubblewrap, cgroups) are required, never skipped:
a missing one is a failure with a message saying what to install."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from grader.catalog import Catalog, load_catalog
from grader.remote import RemoteModule, RunnerClient
from sandbox import Limits, Sandbox, SandboxUnavailable, cgroups, get_backend
from sandbox.uids import UidPool
from tests.services import PostgresServer, RedisServer

# exercise packages used as fixtures hold their own tests: the harness runs them, not this suite
collect_ignore = ["fixtures"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


# The validations of the curriculum's exercises are the suite's longest tests (20 to 80 s each on
# two cores): run first, none of them starts last, while the other workers wait for it.
FIRST = ("tests/integration/test_curriculum.py",)


NO_GPU = "no NVIDIA GPU on this host: run scripts/gpu-check.sh on one"


def gpu_present() -> bool:
    """An NVIDIA GPU that torch can use (asked without creating a CUDA context)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (a stable sort: the rest keep their order). The order is the same
    in every xdist worker, as xdist requires. Tests marked `gpu` are skipped only where there is
    no GPU; everything else this machine can run, it runs."""
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))
    if any(item.get_closest_marker("gpu") for item in items) and not gpu_present():
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(pytest.mark.skip(reason=NO_GPU))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say plainly how many GPU tests did not run, and why (the one kind of skip CI allows)."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and NO_GPU in str(report.longrepr[2])
    ]
    if skipped:
        terminalreporter.write_line(f"gpu: {len(skipped)} test(s) not run: {NO_GPU}")


@pytest.fixture(scope="session")
def toy_catalog() -> Catalog:
    return load_catalog(FIXTURES / "catalog" / "exercises", FIXTURES / "catalog" / "solutions")


@pytest.fixture(scope="session")
def bwrap() -> Sandbox:
    backend = get_backend("bwrap")
    try:
        backend.check()
    except SandboxUnavailable as exc:
        pytest.fail(f"the bwrap sandbox is required for this suite: {exc}")
    return backend


@pytest.fixture(scope="session")
def bwrap_fork(bwrap: Sandbox) -> Iterator[Sandbox]:
    """The bubblewrap backend with runners forked from a fork server."""
    from sandbox.fork import ForkingBwrap

    backend = ForkingBwrap()
    yield backend
    backend.close()


@pytest.fixture(scope="session", params=["bwrap", "none"])
def any_backend(request: pytest.FixtureRequest, bwrap: Sandbox) -> Sandbox:
    return bwrap if request.param == "bwrap" else get_backend("none")


StartModule = Callable[..., RemoteModule]


def client_of(module: RemoteModule) -> RunnerClient:
    """The runner client behind a remote module (its own names shadow attribute access)."""
    return object.__getattribute__(module, "_client")  # type: ignore[no-any-return]


@pytest.fixture
def start_module() -> Iterator[StartModule]:
    """Start a runner in a backend and load `source` as a module; closed after the test."""
    clients: list[RunnerClient] = []

    def start(
        backend: Sandbox, source: str, *, limits: Limits, preload: tuple[str, ...] = (), name: str = "mod"
    ) -> RemoteModule:
        client = RunnerClient(backend.start(limits), limits)
        clients.append(client)
        client.handshake()
        client.init(preload=list(preload), device="cpu")
        return RemoteModule(client, name, client.load(name, source))

    yield start
    for client in clients:
        client.close()


def sandbox_processes() -> list[int]:
    """Processes of the sandbox user in cgroups this test process created (other sandboxes may
    be running on the machine at the same time)."""
    mine = f"/{cgroups.PARENT}/g{os.getpid()}-"
    pool = UidPool.from_env()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                owned = os.stat(f"/proc/{entry}").st_uid in pool
                if owned and mine in Path(f"/proc/{entry}/cgroup").read_text():
                    found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.fixture
def leftovers() -> Callable[[], list[int]]:
    return sandbox_processes


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A running private Redis, emptied for each test."""
    if redis_server.process is None:
        redis_server.start()
    from redis import Redis

    Redis.from_url(redis_server.url).flushall()
    yield redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind the grader supports, one per test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'grader.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture(scope="session")
def docker() -> Sandbox:
    """The Docker backend, with a running daemon and the runtime image (built if missing)."""
    from sandbox.docker import DockerSandbox, build_host_image

    backend = DockerSandbox()
    try:
        backend.check()
    except SandboxUnavailable as exc:
        if "grader sandbox build" not in str(exc):
            pytest.fail(f"Docker is required for this suite (the test command starts dockerd): {exc}")
        build_host_image()
        backend = DockerSandbox()
        backend.check()
    return backend


def containers(label: str) -> list[str]:
    """Ids of the containers, running or not, that carry `label` (`name=value`)."""
    import subprocess

    listed = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def docker_leftovers(wait: float = 10.0) -> list[str]:
    """Containers this test process started that still exist after `wait` seconds (used
    containers are removed in the background, right after their grading)."""
    import socket
    import time

    deadline = time.monotonic() + wait
    while True:
        left = containers(f"grader.owner={socket.gethostname()}:{os.getpid()}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)
