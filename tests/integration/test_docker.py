"""The Docker backend for real: grading, cleanup, a daemon that is down or an image that is
missing (clear system errors), the reaper, and a submission graded through the queue by a worker
that uses Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.catalog import Catalog
from grader.engine import grade
from grader.verdict import Status
from sandbox import Limits, Sandbox, SandboxUnavailable
from sandbox.docker import LABEL, OWNER_LABEL, DockerSandbox, reap
from sandbox.uids import UidPool
from tests.conftest import containers, docker_leftovers
from tests.services import queue_env

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
GRADER = str(Path(sys.executable).with_name("grader"))
GOOD = "def row_sums(rows):\n    return [sum(r) for r in rows]\n"


def test_a_reference_passes_in_docker_with_limits_read_from_outside(
    toy_catalog: Catalog, docker: Sandbox
) -> None:
    exercise = toy_catalog.get("guarded-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), docker)
    assert verdict.status is Status.PASSED, verdict.message
    assert verdict.provenance.sandbox == "docker" and verdict.provenance.image == "grader-runtime:local"
    # the image's id, as `docker image inspect` gives it: what every host must share
    inspected = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", "grader-runtime:local"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert inspected.startswith("sha256:") and verdict.provenance.image_digest == inspected
    [speed] = verdict.performance
    assert speed.source == "cgroup" and speed.passed
    assert docker_leftovers() == []


def test_each_container_runs_as_its_own_uid_under_the_cpu_limit(docker: Sandbox) -> None:
    processes = [docker.start(Limits(cpus=0.5)) for _ in range(2)]
    try:
        configs = []
        for process in processes:
            container = getattr(process.cgroup, "container", "")
            done = subprocess.run(
                ["docker", "inspect", "--format", "{{.Config.User}} {{.HostConfig.NanoCpus}}", container],
                capture_output=True,
                text=True,
                check=True,
            )
            configs.append(done.stdout.split())
        uids = [process.uid for process in processes]
        assert configs == [[f"{uid}:{uid}", "500000000"] for uid in uids]
        assert len(set(uids)) == 2 and all(uid in UidPool.from_env() for uid in uids)
    finally:
        for process in processes:
            process.close()
    assert docker_leftovers() == []


def test_a_stopped_daemon_is_a_clear_system_error(
    toy_catalog: Catalog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    backend = DockerSandbox()
    with pytest.raises(SandboxUnavailable, match="Docker daemon is not usable"):
        backend.check()
    exercise = toy_catalog.get("guarded-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), backend)
    assert verdict.status is Status.SYSTEM_ERROR
    assert "Docker daemon is not usable" in verdict.message and "not your fault" in verdict.summary


def test_a_missing_image_says_how_to_build_it(docker: Sandbox) -> None:
    backend = DockerSandbox("grader-runtime:no-such-tag")
    with pytest.raises(SandboxUnavailable, match="grader sandbox build"):
        backend.start(Limits())


def test_the_reaper_removes_containers_of_dead_workers_only(docker: Sandbox) -> None:
    import socket

    host = socket.gethostname()
    gone_pid = _exited_pid()
    created = []
    for owner in (f"{host}:{gone_pid}", f"{host}:{os.getpid()}"):
        done = subprocess.run(
            [
                "docker",
                "create",
                "--label",
                f"{LABEL}=1",
                "--label",
                f"{OWNER_LABEL}={owner}",
                "grader-runtime:local",
                "x",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        created.append(done.stdout.strip())
    try:
        removed = reap(host)
        assert any(created[0].startswith(r) for r in removed)
        assert not any(created[1].startswith(r) for r in removed)
        assert _exists(created[1]) and not _exists(created[0])
    finally:
        subprocess.run(["docker", "rm", "-f", *created], capture_output=True, check=False)


def _exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _exists(container: str) -> bool:
    return subprocess.run(["docker", "inspect", container], capture_output=True, check=False).returncode == 0


# Docker's path does not depend on the database (the queue tests run on both): one kind each
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_enqueue_and_status_through_a_docker_worker(
    database_url: str, redis_url: str, tmp_path: Path, docker: Sandbox
) -> None:
    env = queue_env(database_url, redis_url, GRADER_SANDBOX="docker")
    run = lambda *args: subprocess.run([GRADER, *args], env=env, capture_output=True, text=True, timeout=180)  # noqa: E731
    assert run("db", "upgrade").returncode == 0
    before = set(_ours())
    (tmp_path / "rows.py").write_text(GOOD)
    submission = run("enqueue", "quick-sum", str(tmp_path / "rows.py")).stdout.split()[-1]
    worker = run("worker", "--burst")
    assert worker.returncode == 0, worker.stderr
    shown = run("status", submission, "--wait", "--json", "--timeout", "60")
    verdict = json.loads(shown.stdout)
    assert verdict["status"] == "passed" and verdict["provenance"]["sandbox"] == "docker"
    assert set(_ours()) <= before, "the worker left containers behind (its warm pool included)"


def _ours() -> list[str]:
    return containers(f"{LABEL}=1")


class DaemonProxy:
    """A unix socket that forwards to the Docker daemon until stopped: a worker talking to the
    daemon through it sees the daemon go down and come back, while other tests keep theirs."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        import socket
        import threading

        self.path, self.target = path, target
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(64)
        self.open = threading.Event()
        self.open.set()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: object, sink: object) -> None:
        try:
            while chunk := source.recv(65536):  # type: ignore[attr-defined]
                sink.sendall(chunk)  # type: ignore[attr-defined]
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(2)  # type: ignore[attr-defined]
                except OSError:
                    pass

    def down(self) -> None:
        self.open.clear()
        for connection in self.connections:
            try:
                connection.close()
            except OSError:
                pass

    def up(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.down()
        self.server.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_daemon_stopping_under_a_worker_ends_in_system_errors_then_recovers(
    database_url: str, redis_url: str, tmp_path: Path, docker: Sandbox
) -> None:
    import time

    from grader.jobs import submissions as subs
    from grader.store import make_engine, sessions

    proxy = DaemonProxy(tmp_path / "docker.sock")
    env = queue_env(
        database_url,
        redis_url,
        DOCKER_HOST=f"unix://{proxy.path}",
        GRADER_SANDBOX="docker",
        GRADER_POOL_SIZE="0",
        GRADER_MAX_ATTEMPTS="2",
    )
    run = lambda *args: subprocess.run([GRADER, *args], env=env, capture_output=True, text=True, timeout=180)  # noqa: E731
    assert run("db", "upgrade").returncode == 0
    (tmp_path / "rows.py").write_text(GOOD)
    engine = make_engine(database_url)
    factory = sessions(engine)

    def final(submission: int) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            row = subs.get(factory, submission)
            if row is not None and row.state in ("done", "system_error"):
                return f"{row.state}:{row.status}:{row.message or ''}"
            time.sleep(0.1)
        pytest.fail(f"submission {submission} never finished")

    worker = subprocess.Popen(
        [GRADER, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        enqueue = lambda: int(run("enqueue", "quick-sum", str(tmp_path / "rows.py")).stdout.split()[-1])  # noqa: E731
        before = set(_ours())
        assert final(enqueue()).startswith("done:passed")
        wait_until_removed = time.monotonic() + 30  # the used container goes in the background
        while set(_ours()) - before and time.monotonic() < wait_until_removed:
            time.sleep(0.1)
        proxy.down()
        outcome = final(enqueue())
        assert outcome.startswith("system_error:system_error:the grader failed this submission 2 times")
        assert "docker" in outcome.lower() and "Traceback" not in outcome
        proxy.up()
        assert final(enqueue()).startswith("done:passed")  # the same worker recovers
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        proxy.close()
        engine.dispose()
