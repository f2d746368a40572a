"""The fork server: imports the runtime once, then forks one fresh, sandboxed runner per request.

It runs inside a bubblewrap sandbox with the runners' own filesystem layout, as root with its
capabilities (it never runs submission code: no request carries any). Per request it forks a
helper that unshares new mount, pid, network, IPC and UTS namespaces and forks the runner, which
is pid 1 of its own pid namespace. Before the runner serves its first frame it joins its cgroups
(memory, pids and CPU limits), mounts a fresh /work, /proc and /dev/pts, sets its rlimits and
environment, drops every capability, becomes the uid its request names (leased to this runner
alone by the worker, so no per-user kernel counter is shared with another runner), and loads the
same seccomp filter as a cold runner. A runner therefore shares nothing writable with the fork
server or with any other runner; what it inherits is the imported runtime, which is the same in
every runner.

The control socket (SOCK_SEQPACKET) carries the typed messages of `grader.runner.control`: a
`Spawn` with the runner's three pipes and its cgroup files as descriptors, answered by `Spawned`
(the runner's host pid) and later `Exited` (its exit code). Only the standard library is used
before the fork; the runner is `grader.runner.server`.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import importlib
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
from typing import NoReturn

from grader.runner import control as messages

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_CAPBSET_DROP = 1, 4, 22, 24
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
SECCOMP_MODE_FILTER = 2
STATUS = struct.Struct("=i")
IFREQ = struct.Struct("16sH22x")  # struct ifreq: the name, then ifr_flags in the union
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

_libc = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    result = _libc.mount(
        source.encode(),
        target.encode(),
        None if fstype is None else fstype.encode(),
        ctypes.c_ulong(flags),
        None if data is None else data.encode(),
    )
    _check(result, f"mount {target}")


# ---------------------------------------------------------------------------- the fork server


def main(control_fd: int, filter_fd: int, preload: list[str]) -> None:
    """Import `preload` and the runner, then serve fork requests until the control socket closes."""
    for name in preload:
        importlib.import_module(name)
    importlib.import_module("grader.runner.server")
    with os.fdopen(filter_fd, "rb") as f:
        seccomp_filter = f.read()
    control = socket.socket(fileno=control_fd)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1 or threading.active_count() != 1:
        # forking a process with threads (an OpenMP pool, say) can leave the child hung
        _send(control, messages.Broken(f"the fork server has {threads} threads after its imports"))
        return
    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    gc.freeze()  # runners then share the runtime's pages instead of copying them on first collection
    _send(control, messages.Ready(os.getpid()))
    helpers: dict[int, tuple[int, int]] = {}  # status pipe -> (helper pid, runner pid)
    while True:
        readable, _, _ = select.select([control.fileno(), *helpers], [], [])
        for ready in readable:
            if ready == control.fileno():
                try:
                    message, fds, _, _ = socket.recv_fds(control, messages.MAX_MESSAGE, 16)
                except OSError:
                    return
                if not message:
                    return  # the worker is gone: so are we
                _spawn_request(control, message, fds, seccomp_filter, helpers)
            else:
                _report_exit(control, ready, helpers)


def _send(control: socket.socket, answer: messages.Message) -> None:
    with contextlib.suppress(OSError):
        control.send(messages.encode(answer))


def _spawn_request(
    control: socket.socket,
    message: bytes,
    fds: list[int],
    seccomp_filter: bytes,
    helpers: dict[int, tuple[int, int]],
) -> None:
    try:
        request = messages.decode(message)
        why = f"a {request.kind.value} message is not a request"
    except messages.ControlError as exc:
        request, why = None, str(exc)
    if not isinstance(request, messages.Spawn):
        for fd in fds:
            os.close(fd)
        _send(control, messages.Broken(f"malformed request: {why}"))
        return
    ident = request.id
    if len(fds) != 3 + request.cgroups:
        for fd in fds:
            os.close(fd)
        _send(control, messages.Spawned(ident, error="wrong number of descriptors"))
        return
    try:
        status_r, status_w = os.pipe()
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        _send(control, messages.Spawned(ident, error=f"no pipe: {exc}"))
        return
    try:
        helper = os.fork()
    except OSError as exc:  # out of processes or memory: this runner fails, the server goes on
        for fd in (*fds, status_r, status_w):
            os.close(fd)
        _send(control, messages.Spawned(ident, error=f"cannot fork: {exc}"))
        return
    if helper == 0:
        try:
            os.close(status_r)
            control.close()
            _helper(request, fds, status_w, seccomp_filter)
        finally:
            os._exit(125)  # whatever happened, a helper never returns into the server loop
    os.close(status_w)
    for fd in fds:
        os.close(fd)
    runner = _read_int(status_r)
    if runner is None:
        os.close(status_r)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(helper, 0)
        _send(control, messages.Spawned(ident, error="the runner could not be started"))
        return
    helpers[status_r] = (helper, runner)
    _send(control, messages.Spawned(ident, pid=runner))


def _report_exit(control: socket.socket, status_r: int, helpers: dict[int, tuple[int, int]]) -> None:
    helper, runner = helpers.pop(status_r)
    status = _read_int(status_r)
    os.close(status_r)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(helper, 0)
    if status is None:
        code = None
    elif os.WIFSIGNALED(status):
        code = -os.WTERMSIG(status)
    else:
        code = os.WEXITSTATUS(status)
    _send(control, messages.Exited(runner, code))


def _read_int(fd: int) -> int | None:
    data = b""
    while len(data) < STATUS.size:
        chunk = os.read(fd, STATUS.size - len(data))
        if not chunk:
            return None
        data += chunk
    return int(STATUS.unpack(data)[0])


# ---------------------------------------------------------------------------- per runner


def _helper(request: messages.Spawn, fds: list[int], status_w: int, seccomp_filter: bytes) -> NoReturn:
    """Between the server and the runner: makes the namespaces, forks the runner, reports its
    pid and then its wait status. Dies with the fork server."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _check(
        _libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
        "unshare",
    )
    ready_r, ready_w = os.pipe()
    runner = os.fork()
    if runner == 0:
        code = 125
        try:
            os.close(status_w)
            os.close(ready_r)
            code = _runner(request, fds, seccomp_filter, ready_w)
        except SystemExit as exc:  # as a fresh interpreter would exit
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:
            _report_setup_failure(fds[2], exc)
        finally:
            os._exit(code)  # never returns into the helper's code
    for fd in fds:
        os.close(fd)
    os.close(ready_w)
    # the pid is reported once the runner leads its own session in its own cgroups, so that
    # whoever holds the pid can kill all of it from then on; a runner that failed before that
    # is reported as not started (the status pipe closes with nothing written)
    ready = os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    if not ready:
        os.waitpid(runner, 0)
        os._exit(1)
    os.write(status_w, STATUS.pack(runner))
    _, status = os.waitpid(runner, 0)
    os.write(status_w, STATUS.pack(status))
    os._exit(0)


def _report_setup_failure(stderr: int, exc: Exception) -> None:
    message = f"the sandbox could not be set up: {exc}\n".encode()
    try:
        os.write(stderr, message)
    except OSError:  # already moved to descriptor 2
        with contextlib.suppress(OSError):
            os.write(2, message)


def _runner(request: messages.Spawn, fds: list[int], seccomp_filter: bytes, ready: int) -> int:
    """pid 1 of a fresh pid namespace: set up the sandbox, become its own uid, serve the harness;
    returns the exit code once the harness is done."""
    stdin, stdout, stderr, *cgroup_files = fds
    os.setsid()
    for fd in cgroup_files:
        os.write(fd, b"0")  # 0: the writing process; joined before anything else runs
        os.close(fd)
    os.write(ready, b"1")
    os.close(ready)
    _check(_libc.unshare(CLONE_NEWCGROUP), "unshare cgroup")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/work", "tmpfs", MS_NOSUID | MS_NODEV, f"size={request.disk_bytes},mode=0777")
    os.mkdir("/work/tmp")
    os.chmod("/work/tmp", 0o1777)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    with contextlib.suppress(OSError):  # defence in depth: the base is root's and 0755 anyway
        _mount("none", "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    _loopback_up()
    for target, fd in enumerate((stdin, stdout, stderr)):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)
    os.chdir("/work")
    os.environ.clear()
    os.environ.update(request.env)
    for name, (soft, hard) in request.rlimits.items():
        resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))
    _drop_privileges(request.uid, seccomp_filter)
    # Signal handlers are a fresh interpreter's (the server installs none); `random` reseeded
    # itself at the fork; the runtime's objects stay frozen out of the collector, in every runner.
    from grader.runner.server import main

    main()
    for stream in (sys.stdout, sys.stderr):  # as an interpreter's exit would
        with contextlib.suppress(Exception):
            stream.flush()
    return 0


def _loopback_up() -> None:
    """The new network namespace's loopback, up as bubblewrap leaves it: the submission may talk
    to itself, and to nothing else."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = IFREQ.pack(b"lo", 0)
        flags = IFREQ.unpack(fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, IFREQ.pack(b"lo", flags | IFF_UP))


def _drop_privileges(uid: int, seccomp_filter: bytes) -> None:
    last_cap = int(open("/proc/sys/kernel/cap_last_cap").read())  # noqa: SIM115, PTH123
    for cap in range(last_cap + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another uid: every capability goes
    if os.getuid() != uid or os.geteuid() != uid or _effective_caps() != 0:
        raise OSError("the runner kept privileges")
    _prctl(PR_SET_DUMPABLE, 1)  # as after an exec: its own /proc entries are its own
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by the uid change, so set again
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    program = ctypes.create_string_buffer(seccomp_filter, len(seccomp_filter))
    fprog = _SockFprog(len(seccomp_filter) // 8, ctypes.cast(program, ctypes.c_void_p))
    _check(
        _libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog), 0, 0),
        "seccomp",
    )


def _effective_caps() -> int:
    with open("/proc/self/status") as f:  # noqa: PTH123
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return -1
