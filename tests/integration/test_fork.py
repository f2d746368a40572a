"""Runners forked from a fork server: each is as isolated from the others, and from the server,
as a cold runner is; the server is restarted when it dies; exits are reported as for a cold one.
(The isolation probes of test_isolation and the red team run against forked runners too.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.remote import RemoteModule, RunnerClient, RunnerDied
from sandbox import Limits, Sandbox, SandboxError, cgroups
from sandbox.fork import ForkingBwrap
from tests.conftest import StartModule

pytestmark = pytest.mark.sandbox

PROBE = r"""
import os, socket


def pids():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())


def leave_traces():
    with open("/work/trace.txt", "w") as f:
        f.write("left by an earlier runner")
    with open("/tmp/trace.txt", "w") as f:
        f.write("left by an earlier runner")
    server = socket.socket(socket.AF_UNIX)
    server.bind("\0grader-trace")
    server.listen()
    globals()["kept"] = server
    return os.listdir("/work")


def find_traces():
    found = [p for p in ("/work/trace.txt", "/tmp/trace.txt") if os.path.exists(p)]
    client = socket.socket(socket.AF_UNIX)
    try:
        client.connect("\0grader-trace")
        found.append("abstract socket")
    except OSError:
        pass
    return found


def cgroup():
    return open("/proc/self/cgroup").read()


def writable_devices():
    found = []
    for d in ("/dev", "/dev/shm", "/dev/pts", "/"):
        try:
            with open(os.path.join(d, "x"), "w"):
                found.append(d)
        except OSError:
            pass
    return found


def hostname():
    return socket.gethostname()


def exit_with(code):
    os._exit(code)
"""


@pytest.fixture
def forking(bwrap: Sandbox) -> Iterator[ForkingBwrap]:
    backend = ForkingBwrap()
    yield backend
    backend.close()


def test_runners_share_nothing_writable(bwrap_fork: Sandbox, start_module: StartModule) -> None:
    limits = Limits(call_seconds=20)
    first = start_module(bwrap_fork, PROBE, limits=limits, name="probe")
    assert sorted(first.leave_traces()) == ["probe.py", "tmp", "trace.txt"]
    second = start_module(bwrap_fork, PROBE, limits=limits, name="probe")  # while the first lives
    assert second.find_traces() == []
    assert first.find_traces() == ["/work/trace.txt", "/tmp/trace.txt", "abstract socket"]
    for probe in (first, second):
        assert probe.pids() == [1]  # itself: not the fork server, not the other runner
        assert probe.writable_devices() == []
        assert probe.hostname() == "sandbox"
        assert all(line.endswith(":/") for line in probe.cgroup().splitlines())  # its own cgroup root


def test_the_runner_is_in_its_cgroup_from_the_start(bwrap_fork: Sandbox) -> None:
    limits = Limits(call_seconds=20)
    client = RunnerClient(bwrap_fork.start(limits), limits)
    try:
        group = client.process.cgroup
        assert group is not None and group.pids() == [client.process.pid]
        client.handshake()
        assert client.process.runner_pid == client.process.pid
        assert os.stat(f"/proc/{client.process.pid}").st_uid == client.process.uid  # already its own
    finally:
        client.close()
    assert client.process.poll() == -signal.SIGKILL


def test_exit_codes_are_reported(bwrap_fork: Sandbox, start_module: StartModule) -> None:
    probe = start_module(bwrap_fork, PROBE, limits=Limits(call_seconds=20), name="probe")
    client = probe._client  # type: ignore[attr-defined]
    with pytest.raises(RunnerDied) as died:
        probe.exit_with(7)
    assert "code 7" in died.value.death.full and "7" not in died.value.death.message
    assert client.process.poll() == 7


def test_a_dead_fork_server_is_replaced(forking: ForkingBwrap, start_module: StartModule) -> None:
    limits = Limits(call_seconds=20)
    before = start_module(forking, PROBE, limits=limits, name="probe")
    server = forking.server("cpu")
    os.kill(server.popen.pid, signal.SIGKILL)  # bubblewrap, and with it the server
    server.popen.wait(timeout=10)
    deadline = time.monotonic() + 10
    while before._client.process.poll() is None and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)
    assert before._client.process.poll() is not None  # type: ignore[attr-defined]  # died with it
    after = start_module(forking, PROBE, limits=limits, name="probe")
    assert forking.server("cpu") is not server
    assert after.find_traces() == []


def test_a_closed_backend_leaves_no_process(forking: ForkingBwrap) -> None:
    server = forking.server("cpu")
    forking.close()
    assert server.popen.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)


def test_a_fork_server_that_cannot_start_is_a_clear_error(bwrap: Sandbox) -> None:
    broken = ForkingBwrap(preload=("no_such_runtime_module",))
    with pytest.raises(
        SandboxError, match="fork server did not start: ModuleNotFoundError: .*no_such_runtime_module"
    ):
        broken.start(Limits())
    broken.close()


def test_forked_runners_carry_their_limits(bwrap_fork: Sandbox, start_module: StartModule) -> None:
    probe: RemoteModule = start_module(
        bwrap_fork, PROBE, limits=Limits(call_seconds=20, disk_mb=4, open_files=64), name="probe"
    )
    client = probe._client  # type: ignore[attr-defined]
    limits = Path(f"/proc/{client.process.pid}/limits").read_text()
    assert "Max open files            64                   64" in limits
    assert "Max core file size        0                    0" in limits


class _Unjoinable:
    """A cgroup whose `cgroup.procs` refuses the runner (writes to /dev/full fail)."""

    procs_files = ["/dev/full"]


def test_a_runner_that_fails_its_setup_is_an_error_and_the_server_goes_on(forking: ForkingBwrap) -> None:
    server = forking.server("cpu")
    lease = forking.uids.lease()
    try:
        with pytest.raises(SandboxError, match="could not start a runner"):
            server.spawn(Limits(), _Unjoinable(), lease.uid)  # type: ignore[arg-type]
        assert server.alive()
        runner = server.spawn(Limits(), None, lease.uid)
        try:
            assert runner.poll() is None
        finally:
            runner.kill_group()
            assert runner.wait(timeout=10) == -signal.SIGKILL
            for stream in (runner.stdin, runner.stdout, runner.stderr):
                assert stream is not None
                stream.close()
    finally:
        lease.release()


def test_runners_run_as_distinct_uids_and_in_a_cpu_quota(bwrap_fork: Sandbox) -> None:
    limits = Limits(call_seconds=20, cpus=0.25)
    clients = [RunnerClient(bwrap_fork.start(limits), limits) for _ in range(2)]
    try:
        for client in clients:
            client.handshake()
            assert os.stat(f"/proc/{client.process.pid}").st_uid == client.process.uid
            assert quota(client) == "25000 100000"
        assert clients[0].process.uid != clients[1].process.uid
    finally:
        for client in clients:
            client.close()


def quota(client: RunnerClient) -> str:
    """The CPU quota of the cgroup the runner is in, from the host."""
    group = client.process.cgroup
    if isinstance(group, cgroups.CgroupV2):
        return (group.path / "cpu.max").read_text().strip()
    assert isinstance(group, cgroups.CgroupV1)
    assert str(client.process.pid) in (group.cpu / "cgroup.procs").read_text().split()
    read = lambda name: (group.cpu / name).read_text().strip()  # noqa: E731
    return f"{read('cpu.cfs_quota_us')} {read('cpu.cfs_period_us')}"


OWNER = """
import sys, time
from sandbox import Limits
from sandbox.fork import ForkingBwrap
backend = ForkingBwrap()
runner = backend.start(Limits())
print(backend.server("cpu").pid, runner.pid, flush=True)
time.sleep(120)
"""


def test_a_killed_owner_takes_its_fork_server_and_runners_along(bwrap: Sandbox) -> None:
    root = Path(__file__).resolve().parents[2]
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert owner.stdout is not None
    server, runner = (int(pid) for pid in owner.stdout.readline().split())
    assert Path(f"/proc/{server}").exists() and Path(f"/proc/{runner}").exists()
    owner.kill()  # SIGKILL: no cleanup code of ours runs
    owner.wait(timeout=10)
    owner.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in (server, runner)):
        time.sleep(0.05)
    assert not Path(f"/proc/{server}").exists() and not Path(f"/proc/{runner}").exists()
