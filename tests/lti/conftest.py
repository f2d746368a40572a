"""The LTI tests' world: the tool (the web app under uvicorn with TLS, as a subprocess) and the
fake platform (its launch side, and its services side when `tests/lti/fake_services.py` has
one, in threads of the test process), all over HTTPS on loopback, with a private Redis and a
data directory whose database has the platform registered.

`lti_world` is also what the browser test starts (with a grader worker).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from grader.lti import registry
from grader.store import make_engine, sessions, upgrade
from grader.store.db import default_url
from tests.integration.web_fixtures import People, World, make_people, open_world
from tests.lti.fake_platform import FakePlatform, ThreadedServer
from tests.lti.tls import Certs, make_certs
from tests.services import RedisServer, free_port, tail

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass
class LtiWorld:
    certs: Certs
    redis: RedisServer
    data_dir: Path
    factory: sessionmaker[Session]
    platform: FakePlatform
    tool_url: str
    tool: subprocess.Popen[bytes]
    logs: dict[str, Path]
    worker: subprocess.Popen[bytes] | None = None
    services: Any = None  # the services side's app object, when it exists
    servers: list[ThreadedServer] = field(default_factory=list)

    @property
    def tls(self) -> ssl.SSLContext:
        """A client TLS context that trusts the test CA."""
        return ssl.create_default_context(cafile=str(self.certs.ca))

    def client(self) -> httpx.Client:
        """A browser-like client of the tool: keeps cookies, shows redirects."""
        return httpx.Client(base_url=self.tool_url, verify=self.tls, timeout=30, follow_redirects=False)

    def check_running(self) -> None:
        for name, process in (("tool", self.tool), ("worker", self.worker)):
            if process is not None and process.poll() is not None:
                pytest.fail(f"the {name} exited with {process.returncode}:\n{tail(self.logs[name])}")


def _wait_healthy(url: str, ca: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the tool exited with {process.returncode} while starting:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the tool did not answer /healthz within {START_TIMEOUT_S:g} s:\n{tail(log)}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def services_app(platform: FakePlatform) -> Any:
    """The fake platform's services side (token, line items, scores, memberships), when
    tests/lti/fake_services.py provides one; else None."""
    path = Path(__file__).with_name("fake_services.py")
    if not path.is_file() or importlib.util.find_spec("tests.lti.fake_services") is None:
        return None
    module = importlib.import_module("tests.lti.fake_services")
    make = getattr(module, "make_services", None)
    return None if make is None else make(platform)


@contextlib.contextmanager
def lti_world(folder: Path, *, worker: bool = False, services: bool = False) -> Iterator[LtiWorld]:
    """Start everything under `folder`; stop it at the end."""
    certs = make_certs(folder / "tls")
    redis = RedisServer()
    redis.start()
    data_dir = folder / "data"
    engine = make_engine(default_url(data_dir))
    upgrade(engine)
    factory = sessions(engine)
    platform = FakePlatform(base="", ca=certs.ca)
    servers: list[ThreadedServer] = []
    processes: list[subprocess.Popen[bytes]] = []
    handles: list[IO[bytes]] = []
    try:
        launch_side = ThreadedServer(platform.app(), certs.cert, certs.key)
        launch_side.start()
        servers.append(launch_side)
        # the platform on "localhost", the tool on "127.0.0.1": two sites, as an LMS and a tool are
        platform.base = launch_side.url.replace("127.0.0.1", "localhost")
        services_side = services_app(platform) if services else None
        if services_side is not None:
            server = ThreadedServer(services_side, certs.cert, certs.key)
            server.start()
            servers.append(server)
            platform.services_base = server.url
        port = free_port()
        tool_url = f"https://127.0.0.1:{port}"
        platform.tool_url = tool_url
        registry.add(factory, registry.PlatformForm(**platform.registration()))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GRADER_") and k not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            REDIS_URL=redis.url,
            GRADER_DATA_DIR=str(data_dir),
            GRADER_PUBLIC_URL=tool_url,
            REQUESTS_CA_BUNDLE=str(certs.ca),
            SSL_CERT_FILE=str(certs.ca),
            PYTHONUNBUFFERED="1",
        )
        logs = {"tool": folder / "tool.log", "worker": folder / "worker.log"}

        def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
            log = logs[name].open("wb")
            handles.append(log)
            process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            processes.append(process)
            return process

        worker_process = start("worker", [str(BIN / "grader"), "worker"]) if worker else None
        tool = start(
            "tool",
            [
                str(BIN / "python"),
                "-m",
                "uvicorn",
                "--factory",
                "web.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--ssl-certfile",
                str(certs.cert),
                "--ssl-keyfile",
                str(certs.key),
            ],
        )
        _wait_healthy(tool_url, certs.ca, tool, logs["tool"])
        yield LtiWorld(
            certs=certs,
            redis=redis,
            data_dir=data_dir,
            factory=factory,
            platform=platform,
            tool_url=tool_url,
            tool=tool,
            logs=logs,
            worker=worker_process,
            services=services_side,
            servers=servers,
        )
    finally:
        for process in reversed(processes):
            _stop(process)
        for log in handles:
            log.close()
        for server in servers:
            server.stop()
        engine.dispose()
        redis.close()


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LtiWorld]:
    with lti_world(tmp_path_factory.mktemp("lti")) as running:
        yield running


@pytest.fixture(scope="module")
def web_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, People]:
    folder = tmp_path_factory.mktemp("lti-web-template")
    return folder, make_people(folder)


@pytest.fixture
def web(web_template: tuple[Path, People], tmp_path: Path, redis_url: str) -> Iterator[World]:
    """The app in this process (no TLS) on a fresh database with an instructor and students."""
    opened = open_world(*web_template, tmp_path / "data", redis_url)
    yield opened
    opened.close()
