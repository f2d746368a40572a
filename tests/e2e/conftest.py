"""A running grader for the browser tests, and the browser.

One server per session: a private Redis, a temporary data directory with its SQLite database
upgraded and an instructor account, then the web app (uvicorn) and one grader worker as
subprocesses, both stopped at the end (and checked to have exited). Pages come from Debian's
Chromium driven by Playwright; Playwright never downloads a browser of its own.

Screenshots and logs go to `artifacts/e2e/` at the repository root: each test saves the pages it
visits, the server and worker logs are kept there, and a test that fails leaves a screenshot of
every page it had open (`FAILED-<test>-<n>.png`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy.orm import Session, sessionmaker

from grader.store import Role, make_engine, sessions, upgrade
from grader.store.db import default_url
from tests.services import RedisServer, free_port, sandbox_strays, tail
from web import accounts

# Playwright is told where the browser is; this keeps it from ever fetching one.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# under pytest-xdist each worker runs its own server and empties only its own folder
# (artifacts/e2e/gw0/, ...): emptying a shared one removed the other worker's logs mid-run
ARTIFACTS = ROOT / "artifacts" / "e2e" / os.environ.get("PYTEST_XDIST_WORKER", "")
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTRUCTOR_EMAIL = "teacher@e2e.example"
INSTRUCTOR_PASSWORD = "teacher-e2e-password"
INSTRUCTOR_NAME = "Ada Instructor"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# a grading of causal-masking takes seconds; this leaves room for a busy 2-core machine
VERDICT_TIMEOUT_S = 180.0


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot of `page` as artifacts/e2e/<name>.png."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Server:
    url: str
    data_dir: Path
    redis_url: str
    factory: sessionmaker[Session]
    web_process: subprocess.Popen[bytes]
    worker_process: subprocess.Popen[bytes]
    instructor_email: str = INSTRUCTOR_EMAIL
    instructor_password: str = INSTRUCTOR_PASSWORD
    instructor_name: str = INSTRUCTOR_NAME
    logs: dict[str, Path] = field(default_factory=dict)

    def check_running(self) -> None:
        """Fail with the log's tail when the web app or the worker has exited."""
        for name, process in (("web", self.web_process), ("worker", self.worker_process)):
            if process.poll() is not None:
                pytest.fail(f"the {name} process exited with {process.returncode}:\n{tail(self.logs[name])}")

    def wait(self, check: Callable[[], None], timeout_s: float, what: str) -> None:
        """Run `check` (an assertion with a short timeout of its own) until it passes, failing
        at once if the web app or the worker exits meanwhile, and after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                check()
                return
            except (AssertionError, PlaywrightTimeout) as exc:
                self.check_running()
                if time.monotonic() > deadline:
                    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}: {exc}")


def server_env(data_dir: Path, redis_url: str) -> dict[str, str]:
    """The environment of the web app and the worker: this session's Redis and data directory,
    nothing inherited that could point either elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GRADER_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(REDIS_URL=redis_url, GRADER_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the web app exited with {process.returncode} while starting:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200 and b'"ok"' in response.read():
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the web app did not answer /healthz within {START_TIMEOUT_S:g} s:\n{tail(log)}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes], name: str) -> str | None:
    """SIGTERM, then wait; a process still running after STOP_TIMEOUT_S is killed and reported."""
    if process.poll() is not None:
        return f"the {name} process had already exited with {process.returncode}"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return f"the {name} process did not exit within {STOP_TIMEOUT_S:g} s of SIGTERM and was killed"
    # uvicorn shuts down cleanly, then re-raises the signal: -SIGTERM is its normal ending
    clean = (0, -signal.SIGTERM) if name == "web" else (0,)
    if process.returncode not in clean:
        return f"the {name} process exited with {process.returncode} after SIGTERM"
    return None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """artifacts/e2e/, emptied at the start of the session."""
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


# Package scope: the server, its worker and Playwright (whose sync API keeps an event loop
# running in the main thread) end with the browser tests, before any other test runs.
@pytest.fixture(scope="package")
def server(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    redis = RedisServer()
    redis.start()
    data_dir = tmp_path_factory.mktemp("e2e-data")
    engine = make_engine(default_url(data_dir))
    upgrade(engine)
    factory = sessions(engine)
    accounts.create_user(
        factory, INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, INSTRUCTOR_NAME, role=Role.INSTRUCTOR
    )
    env = server_env(data_dir, redis.url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = {"web": artifacts / "web.log", "worker": artifacts / "worker.log"}
    handles: list[IO[bytes]] = []
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = logs[name].open("wb")
        handles.append(log)
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        processes.append((name, process))
        return process

    try:
        worker = start("worker", [str(BIN / "grader"), "worker"])
        web = start(
            "web",
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
            ],
        )
        wait_healthy(url, web, logs["web"])
        running = Server(url, data_dir, redis.url, factory, web, worker, logs=logs)
        running.check_running()
        yield running
    finally:
        problems = [p for name, process in reversed(processes) if (p := stop(process, name))]
        (artifacts / "exit-codes.txt").write_text(
            "".join(f"{name} (pid {process.pid}): {process.returncode}\n" for name, process in processes)
        )
        for log in handles:
            log.close()
        started = dict(processes)
        if "web" in started and "Application shutdown complete" not in tail(logs["web"], 10):
            problems.append("the web app did not log a clean shutdown")
        if "worker" in started:
            deadline = time.monotonic() + 10
            while (left := sandbox_strays(started["worker"].pid)) and time.monotonic() < deadline:
                time.sleep(0.1)
            if left:
                problems.append(f"sandbox processes {left} outlived the worker")
        engine.dispose()
        redis.close()
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium; "
            "install it with `scripts/setup.sh --test`"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps each phase's report on the test, for `pages` to know whether the test failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@dataclass
class Pages:
    """Browser contexts (one per user: each has its own cookies) opened by one test."""

    browser: Browser
    base_url: str
    contexts: list[BrowserContext] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def new(self, label: str) -> Page:
        context = self.browser.new_context(base_url=self.base_url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        self.contexts.append(context)
        page = context.new_page()
        self.pages.append(page)

        def on_console(message: ConsoleMessage) -> None:
            self.console.append(f"[{label}] {message.type}: {message.text} ({page.url})")

        def on_error(error: Exception) -> None:
            self.errors.append(f"[{label}] {error} ({page.url})")

        page.on("console", on_console)
        page.on("pageerror", on_error)
        return page


@pytest.fixture
def pages(
    request: pytest.FixtureRequest, browser: Browser, server: Server
) -> Iterator[Callable[[str], Page]]:
    """`pages(label)` opens a page in a fresh browser context. After the test: a screenshot of every
    open page if the test failed, the browser console in artifacts/e2e/console-<test>.log, and a
    failure if a page raised an uncaught JavaScript error."""
    opened = Pages(browser, server.url)
    yield opened.new
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    reports = request.node.stash.get(REPORTS, {})
    failed = any(r.failed for r in reports.values())
    if failed:
        for index, page in enumerate(opened.pages):
            if not page.is_closed():
                with contextlib.suppress(Exception):  # a page that cannot be drawn must not hide the failure
                    shot(page, f"FAILED-{name}-{index}")
    (ARTIFACTS / f"console-{name}.log").write_text("\n".join(opened.console + opened.errors) + "\n")
    for context in opened.contexts:
        context.close()
    if opened.errors and not failed:
        pytest.fail("JavaScript errors on the pages:\n" + "\n".join(opened.errors))
