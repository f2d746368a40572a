"""`grader serve` and `grader submit --server` as a user runs them: real processes, the private
Redis that serve starts, one worker grading in bubblewrap, and a client that speaks only HTTP.

One server runs for the module (its startup and its worker's warm-up cost seconds on a small
machine); the tests that stop it come last. The client's handling of answers a real server
rarely gives (429, 503, a broken event stream) is checked against a small fake server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from grader.verdict import Provenance, Verdict

GRADER = str(Path(sys.executable).with_name("grader"))
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "submissions" / "attention.py"
FORBIDDEN = ROOT / "solutions" / "causal-masking" / "wrong" / "calls_torch_sdpa.py"
# what would point serve or the client elsewhere than this test's own
OUTSIDE = (
    "REDIS_URL",
    "GRADER_REDIS_URL",
    "DATABASE_URL",
    "GRADER_DATABASE_URL",
    "GRADER_SERVER",
    "GRADER_TOKEN",
)


def environment(data_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE and k != "GRADER_DATA_DIR"}
    if data_dir is not None:
        env["GRADER_DATA_DIR"] = str(data_dir)
    return env


def one_line(text: str) -> str:
    return " ".join(text.split())


def grader(
    *args: str, data_dir: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRADER, *args],
        env=environment(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def process_tree(root: int) -> dict[int, str]:
    """Every live descendant of `root` (pid -> command line), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            found[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        todo.extend(children.get(pid, []))
    return found


def alive(pids: dict[int, str]) -> dict[int, str]:
    """Those of `pids` still running (zombies waiting for their reaper count as gone)."""
    left = {}
    for pid, command in pids.items():
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            left[pid] = command
    return left


def wait_gone(pids: dict[int, str], timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


class Serve:
    """A `grader serve` on a free port, with its output in files."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.stdout_path = data_dir.parent / f"{data_dir.name}-serve-{time.monotonic_ns()}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        with self.stdout_path.open("w") as stdout, self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [GRADER, "serve", "--port", "0", *args],
                env=environment(data_dir),
                stdout=stdout,
                stderr=stderr,
            )
        self.url = self._wait_for_url()

    @property
    def output(self) -> str:
        return self.stdout_path.read_text()

    @property
    def errors(self) -> str:
        return self.stderr_path.read_text()

    def _wait_for_url(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(r"^web:\s+(http://127\.0\.0\.1:\d+)/$", self.output, re.MULTILINE)
            if found:
                return found[1]
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                pytest.fail(f"grader serve did not start:\n{self.output}\n{self.errors}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"grader serve did not stop within {timeout} s after signal {sig}")
        return self.process.returncode

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def demo_password(output: str, email: str) -> str:
    found = re.search(rf"^\s+\w+: {re.escape(email)}\s+password: (\S+)$", output, re.MULTILINE)
    assert found, f"no password for {email} in:\n{output}"
    return found[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve") / "var"


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[Serve]:
    serve = Serve(data_dir, "--workers", "1")
    try:
        yield serve
    finally:
        serve.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def token(server: Serve) -> str:
    password = demo_password(server.output, "student@example.com")
    answer = server.post(
        "/api/v1/tokens", {"email": "student@example.com", "password": password, "name": "test"}
    )
    return str(answer["token"])


def submit(
    server: Serve, token: str, exercise: str, file: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return grader("submit", exercise, str(file), "--server", server.url, "--token", token, *args)


# --- one server, running ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_first_run_prints_the_urls_and_both_demo_logins(server: Serve, data_dir: Path) -> None:
    output = server.output
    for email in ("instructor@example.com", "student@example.com"):
        assert len(demo_password(output, email)) >= 8
    assert f"kept in {data_dir}/demo-logins.txt" in output
    assert f"API docs: {server.url}/docs" in output and f"OpenAPI:  {server.url}/openapi.json" in output
    assert f"{data_dir}/logs/worker-<n>.log" in output
    assert server.get("/healthz") == {"status": "ok"}
    assert "/api/v1/submissions" in server.get("/openapi.json")["paths"]
    sock = data_dir / "redis.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o700


@pytest.mark.slow
@pytest.mark.sandbox
def test_submit_waits_for_the_verdict_and_names_what_the_pass_unlocked(server: Serve, token: str) -> None:
    done = submit(server, token, "causal-masking", SAMPLE, "--wait")
    assert done.returncode == 0, done.stderr
    found = re.search(rf"^submission (\d+): {re.escape(server.url)}/submissions/(\d+)$", done.stdout, re.M)
    assert found and found[1] == found[2], done.stdout
    assert "Passed" in done.stdout and "tests passed" in done.stdout
    assert "unlocked: multi-head-attention, sinusoidal-positions, rope" in done.stdout
    # the server agrees, through the same API
    request = urllib.request.Request(
        f"{server.url}/api/v1/submissions/{found[1]}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["status"] == "passed"


@pytest.mark.slow
@pytest.mark.sandbox
def test_a_verdict_that_is_not_a_pass_still_exits_zero_as_grade_does(server: Serve, token: str) -> None:
    done = submit(server, token, "causal-masking", FORBIDDEN, "--wait", "--json", "--public")
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["status"] == "rejected" and "scaled_dot_product_attention" in verdict["message"]
    assert verdict["unlocked"] == [] and isinstance(verdict["submission"], int)
    assert re.search(r"submission \d+: http://", done.stderr)


@pytest.mark.slow
def test_refusals_are_one_clear_line_with_the_usage_exit_code(server: Serve, token: str) -> None:
    locked = submit(server, token, "bpe-encode", SAMPLE)
    assert locked.returncode == 2 and locked.stdout == ""
    assert "is locked: pass bpe-merges first. (HTTP 403)" in one_line(locked.stderr)
    unknown = submit(server, token, "no-such-concept", SAMPLE)
    assert unknown.returncode == 2
    assert "concept 'no-such-concept' not found (HTTP 404)" in one_line(unknown.stderr)
    refused = submit(server, "gr_not-a-token", "causal-masking", SAMPLE)
    assert refused.returncode == 2 and "refused the token" in one_line(refused.stderr)
    for result in (locked, unknown, refused):
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_second_serve_on_the_same_data_dir_is_refused(server: Serve, data_dir: Path) -> None:
    done = grader("serve", "--port", "0", data_dir=data_dir, timeout=60)
    assert done.returncode == 1
    message = one_line(done.stderr)
    assert f"already running on {data_dir} (pid {server.process.pid})" in message
    assert server.get("/healthz") == {"status": "ok"}  # the first one is untouched


@pytest.mark.slow
def test_sigterm_stops_the_web_server_its_workers_and_redis(server: Serve, data_dir: Path) -> None:
    children = process_tree(server.process.pid)
    commands = list(children.values())
    assert any(c.startswith("redis-server") or "/redis-server " in c for c in commands), commands
    assert any("-m grader worker" in c for c in commands), commands
    assert server.stop(signal.SIGTERM) == 0
    assert "stopped" in server.errors
    assert wait_gone(children, timeout=5) == {}
    assert not (data_dir / "redis.sock").exists()


@pytest.mark.slow
def test_a_second_run_reuses_the_database_and_a_sigkill_leaves_nothing_running(
    server: Serve, data_dir: Path
) -> None:
    first = server.output
    server.stop(signal.SIGTERM)
    with socket.socket(socket.AF_UNIX) as stale:  # as a killed Redis leaves its socket
        stale.bind(str(data_dir / "redis.sock"))
    again = Serve(data_dir, "--workers", "1")
    try:
        assert "password" not in again.output
        assert f"demo logins: in {data_dir}/demo-logins.txt" in again.output
        # the demo student of the first run still logs in: the same database
        password = demo_password(first, "student@example.com")
        assert again.post("/api/v1/tokens", {"email": "student@example.com", "password": password})["token"]
        deadline = time.monotonic() + 30
        while not any("-m grader worker" in c for c in process_tree(again.process.pid).values()):
            assert time.monotonic() < deadline, "no worker started"
            time.sleep(0.1)
        children = process_tree(again.process.pid)
        again.stop(signal.SIGKILL)
        assert wait_gone(children, timeout=20) == {}, "children outlived a SIGKILLed grader serve"
    finally:
        again.stop(signal.SIGKILL)


# --- no server needed -------------------------------------------------------------------------


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = grader("serve", "--port", str(port), data_dir=tmp_path / "var", timeout=60)
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in one_line(done.stderr)
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "var" / "redis.sock").exists()


def test_a_redis_already_answering_on_the_socket_is_refused(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is required by this suite: install Debian's redis-server")
    data = tmp_path / "var"
    data.mkdir()
    sock = data / "redis.sock"
    argv = [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    redis = subprocess.Popen([*argv, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        done = grader("serve", "--port", "0", "--workers", "0", data_dir=data, timeout=60)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    assert done.returncode == 1
    assert f"a Redis already answers on {sock}: another `grader serve` uses {data}" in one_line(done.stderr)


def test_the_client_refuses_bad_input_before_sending_anything(tmp_path: Path) -> None:
    server = ("--server", "http://127.0.0.1:9", "--token", "gr_x")
    missing = grader("submit", "causal-masking", str(tmp_path / "missing.py"), *server)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    binary = tmp_path / "latin1.py"
    binary.write_bytes(b"# caf\xe9\n")
    not_utf8 = grader("submit", "causal-masking", str(binary), *server)
    assert not_utf8.returncode == 2 and "is not UTF-8 text" in one_line(not_utf8.stderr)
    no_server = grader("submit", "causal-masking", str(SAMPLE), "--token", "gr_x")
    assert no_server.returncode == 2 and "--server URL (or set GRADER_SERVER)" in one_line(no_server.stderr)


def test_an_unreachable_server_is_our_failure(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = grader(
        "submit", "causal-masking", str(SAMPLE), "--server", f"http://127.0.0.1:{port}", "--token", "gr_x"
    )
    assert done.returncode == 1
    assert f"cannot reach the server at http://127.0.0.1:{port}: Connection refused" in one_line(done.stderr)


class FakeApi(ThreadingHTTPServer):
    """Answers from a table: (method, path) -> a list of (status, JSON body), the last repeated."""

    daemon_threads = True

    def __init__(self, routes: dict[tuple[str, str], list[tuple[int, Any]]]) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.routes = routes
        self.seen: list[tuple[str, str, dict[str, Any] | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeApi

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.seen.append((method, self.path, body))
        answers = self.server.routes.get((method, self.path)) or [(404, {"detail": "Not Found"})]
        status, data = answers.pop(0) if len(answers) > 1 else answers[0]
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi({})
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.shutdown()
        api.server_close()
        thread.join(timeout=5)


CREATED = {"id": 7, "url": "/submissions/7", "state": "queued"}


@pytest.mark.parametrize(
    ("status", "detail", "code"),
    [
        (429, "you have 3 submissions waiting; wait for one to finish", 1),
        (503, "the queue is unavailable: cannot reach Redis", 1),
        (413, "the file is 70000 bytes; this exercise takes at most 65536", 2),
    ],
)
def test_refusals_show_the_servers_detail(fake: FakeApi, status: int, detail: str, code: int) -> None:
    fake.routes[("POST", "/api/v1/submissions")] = [(status, {"detail": detail})]
    done = grader("submit", "causal-masking", str(SAMPLE), "--server", fake.url, "--token", "gr_x")
    assert done.returncode == code
    assert f"{detail} (HTTP {status})" in one_line(done.stderr)
    method, path, body = fake.seen[0]
    assert body is not None and body["exercise"] == "causal-masking" and body["kind"] == "submit"
    assert body["source"] == SAMPLE.read_text() and body["filename"] == "attention.py"


def test_a_broken_event_stream_falls_back_to_polling(fake: FakeApi) -> None:
    verdict = Verdict(
        status="passed",
        summary="passed all 3 tests",
        provenance=Provenance(exercise="x", exercise_version="v1", submission_sha256="0" * 64),
    ).model_dump(mode="json")
    fake.routes[("POST", "/api/v1/submissions")] = [(201, CREATED)]
    fake.routes[("GET", "/api/v1/submissions/7/events")] = [(500, {"detail": "boom"})]
    fake.routes[("GET", "/api/v1/submissions/7")] = [
        (200, {**CREATED, "state": "running"}),
        (200, {**CREATED, "state": "done", "verdict": verdict, "unlocked": ["rope"]}),
    ]
    done = grader(
        "submit",
        "causal-masking",
        str(SAMPLE),
        "--server",
        fake.url + "/",
        "--token",
        "gr_x",
        "--wait",
        "--public",
    )
    assert done.returncode == 0, done.stderr
    assert f"submission 7: {fake.url}/submissions/7" in done.stdout
    assert "Passed" in done.stdout and "passed all 3 tests" in done.stdout and "unlocked: rope" in done.stdout
    assert fake.seen[0][2] is not None and fake.seen[0][2]["kind"] == "public"
    assert [p for m, p, _ in fake.seen].count("/api/v1/submissions/7") == 2


def test_a_system_error_is_our_failure(fake: FakeApi) -> None:
    fake.routes[("POST", "/api/v1/submissions")] = [(201, CREATED)]
    fake.routes[("GET", "/api/v1/submissions/7")] = [(200, {**CREATED, "state": "system_error"})]
    done = grader("submit", "causal-masking", str(SAMPLE), "--server", fake.url, "--token", "gr_x", "--wait")
    assert done.returncode == 1
    assert "failed on the server's side (system_error)" in one_line(done.stderr)


def test_waiting_gives_up_after_the_timeout(fake: FakeApi) -> None:
    fake.routes[("POST", "/api/v1/submissions")] = [(201, CREATED)]
    fake.routes[("GET", "/api/v1/submissions/7")] = [(200, {**CREATED, "state": "running"})]
    done = grader(
        "submit",
        "causal-masking",
        str(SAMPLE),
        "--server",
        fake.url,
        "--token",
        "gr_x",
        "--wait",
        "--timeout",
        "1.5",
    )
    assert done.returncode == 1
    assert "submission 7 is still running after 1.5 s" in one_line(done.stderr)
