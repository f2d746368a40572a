"""What a submission can see and do inside the bwrap sandbox, probed from inside: with runners
started fresh and with runners forked from a fork server. What sandboxes must not share (per-user
kernel counters, CPUs) is checked in Docker too."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from grader.catalog import Catalog
from grader.engine import grade
from grader.remote import RemoteModule, RunnerClient
from grader.verdict import Status
from sandbox import Limits, Sandbox, SandboxError, cgroups
from sandbox.policy import SANDBOX_UID, runner_env
from sandbox.uids import UidPool
from tests.conftest import StartModule

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "redteam" / "cases"

PROBE = r"""
import ctypes, errno, os, socket

libc = ctypes.CDLL(None, use_errno=True)


def identity():
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "status": {k: v.strip() for k, v in (l.split(":", 1) for l in open("/proc/self/status"))
                       if k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp")}}


def environment():
    return dict(os.environ)


def find(names):
    found = []
    for top, dirs, files in os.walk("/"):
        if top.startswith(("/proc", "/sys", "/dev")):
            dirs[:] = []
            continue
        found += [os.path.join(top, f) for f in files + dirs if f in names]
    return found


def exists(paths):
    return [p for p in paths if os.path.exists(p)]


def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__


def connect_unix(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return "connected"
    except OSError as exc:
        return type(exc).__name__


def resolve(name):
    try:
        return socket.gethostbyname(name)
    except OSError as exc:
        return type(exc).__name__


def interfaces():
    return sorted(name for _, name in socket.if_nameindex())


def write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, "?")


def fill_disk():
    try:
        with open("/work/big", "wb") as f:
            while True:
                f.write(b"\0" * (1 << 20))
    except OSError as exc:
        return errno.errorcode.get(exc.errno, "?")


def syscalls():
    def err(result):
        return "ok" if result == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    out = {
        "unshare_user": err(libc.unshare(0x10000000)),
        "unshare_net": err(libc.unshare(0x40000000)),
        "mount": err(libc.mount(b"none", b"/work", b"tmpfs", 0, None)),
        "ptrace": err(libc.ptrace(0, 0, None, None)),
        "chroot": err(libc.chroot(b"/work")),
    }
    try:
        os.kill(1, 9)
        out["kill_init"] = "ok"
    except OSError as exc:
        out["kill_init"] = errno.errorcode.get(exc.errno, "?")
    try:
        os.mknod("/work/null", 0o600 | 0o020000, os.makedev(1, 3))
        out["mknod"] = "ok"
    except OSError as exc:
        out["mknod"] = errno.errorcode.get(exc.errno, "?")
    return out


def fork_bomb():
    children = []
    try:
        while True:
            pid = os.fork()
            if pid == 0:
                import time
                time.sleep(60)
                os._exit(0)
            children.append(pid)
    except OSError as exc:
        return len(children), errno.errorcode.get(exc.errno, "?")


def daemon():
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            import time
            time.sleep(600)
        os._exit(0)
    os.waitpid(middle, 0)  # the middle process is gone, the daemon lives on: as a daemon starts
    return True
"""


@pytest.fixture(params=["bwrap", "bwrap_fork"])
def isolated(request: pytest.FixtureRequest) -> Sandbox:
    backend: Sandbox = request.getfixturevalue(request.param)
    return backend


@pytest.fixture
def probe(isolated: Sandbox, start_module: StartModule) -> RemoteModule:
    return start_module(
        isolated, PROBE, limits=Limits(call_seconds=30, disk_mb=8, pids=16, memory_mb=512), name="probe"
    )


def test_runs_as_its_own_uid_without_capabilities(probe: RemoteModule) -> None:
    me = probe.identity()
    uid = probe._client.process.uid  # type: ignore[attr-defined]
    assert uid in UidPool.from_env() and uid != SANDBOX_UID
    assert (me["uid"], me["euid"], me["gid"], me["groups"]) == (uid, uid, uid, [])
    assert me["status"]["CapEff"] == me["status"]["CapPrm"] == me["status"]["CapBnd"] == "0000000000000000"
    assert me["status"]["NoNewPrivs"] == "1" and me["status"]["Seccomp"] == "2"


def test_environment_is_empty_of_ours(probe: RemoteModule, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_SECRET_CANARY", "s3cr3t")
    env = probe.environment()
    assert set(env) <= set(runner_env(Limits())) | {"PWD", "LC_CTYPE"}
    assert "s3cr3t" not in str(env)


def test_no_hidden_tests_solutions_or_repository_inside(probe: RemoteModule) -> None:
    found = probe.find(
        ["test_hidden.py", "solution.py", "solutions", "exercise.toml", "tracks.toml", "DESIGN.md"]
    )
    assert found == []
    assert (
        probe.exists([str(ROOT), str(ROOT / "solutions"), str(ROOT / "var"), "/root/.ssh", "/etc/passwd"])
        == []
    )


def test_no_network_not_even_loopback_to_the_host(probe: RemoteModule, tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    unix_path = str(tmp_path / "host.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen()
    try:
        assert probe.connect("127.0.0.1", port) == "ConnectionRefusedError"
        assert probe.connect("1.1.1.1", 443) in ("OSError", "TimeoutError")
        assert probe.connect_unix(unix_path) == "FileNotFoundError"
        assert probe.resolve("pypi.org") == "gaierror"
        assert probe.interfaces() == ["lo"]
    finally:
        server.close()
        unix.close()


def test_only_the_work_dir_is_writable_and_it_is_capped(probe: RemoteModule) -> None:
    assert probe.write("/work/ok.txt") == "written"
    assert probe.write("/tmp/ok.txt") == "written"
    for path in (
        "/escape.txt",
        "/usr/lib/x.txt",
        "/opt/grader/runtime/grader/codec.py",
        "/proc/sys/kernel/x",
    ):
        assert probe.write(path) in ("EROFS", "EACCES", "ENOENT", "EPERM"), path
    assert probe.fill_disk() == "ENOSPC"


def test_dangerous_syscalls_are_refused(probe: RemoteModule, isolated: Sandbox) -> None:
    found = probe.syscalls()
    assert found.pop("kill_init") == ("EPERM" if isolated.start_method == "exec" else "ok")
    assert found == {
        "unshare_user": "EPERM",
        "unshare_net": "EPERM",
        "mount": "EPERM",
        "ptrace": "EPERM",
        "chroot": "EPERM",
        "mknod": "EPERM",
    }
    # a forked runner is pid 1 of its namespace: SIGKILL from inside is ignored, and it goes on
    assert probe.interfaces() == ["lo"]


def test_fork_bombs_hit_the_pids_limit(probe: RemoteModule) -> None:
    count, error = probe.fork_bomb()
    assert error == "EAGAIN" and count < 16


def sandbox_processes() -> list[int]:
    """Processes running as a sandbox uid in cgroups this test process created (other sandboxes
    may be running on the machine at the same time)."""
    mine, uids = f"/{cgroups.PARENT}/g{os.getpid()}-", UidPool.from_env()
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{entry}").st_uid in uids and mine in Path(f"/proc/{entry}/cgroup").read_text():
                found.append(int(entry))
        except OSError:
            continue
    return found


def test_nothing_outlives_the_sandbox(isolated: Sandbox) -> None:
    limits = Limits(call_seconds=10)
    client = RunnerClient(isolated.start(limits), limits)
    try:
        client.handshake()
        client.init(preload=[], device="cpu")
        module = RemoteModule(client, "probe", client.load("probe", PROBE))
        assert module.daemon() is True
        group = client.process.cgroup
        assert group is not None
        assert len(sandbox_processes()) == 2  # the runner and its daemon (the middle process exited)
    finally:
        client.close()
    assert sandbox_processes() == []
    assert not any(d.exists() for d in group.directories())


# ---------------------------------------------------------------- what sandboxes must not share


@pytest.fixture(params=["bwrap", "bwrap_fork", pytest.param("docker", marks=pytest.mark.slow)])
def each_sandbox(request: pytest.FixtureRequest) -> Sandbox:
    backend: Sandbox = request.getfixturevalue(request.param)
    return backend


def test_live_runners_have_their_own_uids_given_back_once_closed_or_killed(
    each_sandbox: Sandbox, start_module: StartModule, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first_uid = 2_100_100_000  # a block of two, apart from the one other sandboxes use meanwhile
    monkeypatch.setattr(each_sandbox, "uids", UidPool(first_uid, 2, tmp_path / "uids"))
    limits = Limits(call_seconds=30)

    def start() -> RemoteModule:
        module = start_module(each_sandbox, PROBE, limits=limits, name="probe")
        uid = module._client.process.uid  # type: ignore[attr-defined]
        assert module.identity()["uid"] == uid  # as the runner itself sees it
        return module

    first, second = start(), start()
    uids = [m._client.process.uid for m in (first, second)]  # type: ignore[attr-defined]
    assert sorted(uids) == [first_uid, first_uid + 1]
    with pytest.raises(SandboxError, match="no free sandbox uid"):
        each_sandbox.start(limits)  # both are live: no third runner may share either uid
    first._client.close()  # type: ignore[attr-defined]
    third = start()
    assert third._client.process.uid == uids[0]  # type: ignore[attr-defined]
    second._client.process.kill()  # type: ignore[attr-defined]
    second._client.close()  # type: ignore[attr-defined]
    assert start()._client.process.uid == uids[1]  # type: ignore[attr-defined]


def test_a_grading_sees_its_own_per_user_counters_only(
    each_sandbox: Sandbox, start_module: StartModule, toy_catalog: Catalog
) -> None:
    """Two gradings at once: one fills its per-user queue of signals (RLIMIT_SIGPENDING) and
    keeps it full; the other reads SigQ in its /proc/self/status and reports it in its sums."""
    limits = Limits(call_seconds=30, pids=16, memory_mb=512)
    fill, read = ((CASES / f"uid_{name}_signals.py").read_text() for name in ("fill", "read"))
    filler = start_module(each_sandbox, fill, limits=limits, preload=("torch",), name="rows")
    filled, limit = filler.queued_signals()
    assert filled == filler.QUEUED.value() >= min(limit, 1000), "the filler could not fill its queue"
    exercise = toy_catalog.get("guarded-sum")
    verdict = grade(exercise, read.encode(), each_sandbox, filename="rows.py", measure=False)
    assert verdict.status is Status.PASSED, [t.message for t in verdict.tests]
    reader = start_module(each_sandbox, read, limits=limits, preload=("torch",), name="rows")
    assert tuple(reader.queued_signals()) == (0, limit)
    assert tuple(filler.queued_signals()) == (filled, limit)  # still full all along


HOG = """
import os, time


def hog(processes, seconds):
    for _ in range(processes):
        if os.fork() == 0:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            os._exit(0)
    return True
"""


@pytest.mark.parametrize("cpus", [1.0, 0.5])
def test_a_cpu_hog_is_capped_at_its_cpus(
    each_sandbox: Sandbox, start_module: StartModule, cpus: float, capsys: pytest.CaptureFixture[str]
) -> None:
    hog = start_module(each_sandbox, HOG, limits=Limits(call_seconds=30, pids=16, cpus=cpus), name="hog")
    group = hog._client.process.cgroup  # type: ignore[attr-defined]
    assert group is not None and hog.hog(4, 3.0)
    time.sleep(0.3)  # every one of them spinning
    assert len(group.pids()) >= 5  # the runner and its four
    cpu, wall = group.cpu_ns(), time.monotonic_ns()
    time.sleep(1.0)
    ratio = (group.cpu_ns() - cpu) / (time.monotonic_ns() - wall)
    with capsys.disabled():
        print(f"\n{each_sandbox.name}/{each_sandbox.start_method} cpus={cpus}: {ratio:.2f} CPUs busy")
    assert 0 < ratio <= cpus * 1.3  # (on an idle host of 2 cores or more, 4 uncapped spinners: >= 2)


def test_the_host_has_real_cgroups_for_limits() -> None:
    kind, _ = cgroups.discover()
    assert kind in ("v1", "v2"), "memory and pids limits need cgroups on the CI host"
