"""Runners forked from a fork server: the bubblewrap sandbox without a torch import per runner.

A cold bubblewrap runner spends most of its start importing torch (about 0.85 s of CPU here), and
a grading starts two (the submission's and the reference's). `ForkingBwrap` keeps one fork server
per device (`grader.runner.zygote`, itself in a bubblewrap sandbox) that imported the runtime
once, and asks it for each runner: the runner is a fork of it that makes its own namespaces,
cgroup membership (with its CPU quota), /work, rlimits, uid (leased for it alone, as for a cold
runner) and seccomp filter before it serves a frame, so it is isolated as a cold one is and
shares nothing writable, and no per-user kernel counter, with any other.

Differences from a cold runner, all deliberate: its memory cgroup is charged only for the pages
it touches (the runtime's pages stay charged to the fork server, so the baseline is smaller);
it is pid 1 of its namespace (as in Docker); its interpreter's hash seed is the fork server's.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import IO, cast

from grader.runner import control
from sandbox import cgroups
from sandbox.base import SandboxError, SandboxProcess, SandboxUnavailable
from sandbox.bwrap import HOST_ENV, BwrapSandbox
from sandbox.policy import Limits, fork_server_argv, gpu_nodes, rlimits, runner_env
from sandbox.runtime import host_layout
from sandbox.seccomp import filter_fd
from sandbox.uids import UidPool

log = logging.getLogger("grader.sandbox")
STARTUP_SECONDS = 120.0  # importing torch on a loaded machine
SPAWN_SECONDS = 30.0


class ForkServer:
    """One fork server process and the socket that drives it. Thread-safe."""

    def __init__(self, device: str, preload: tuple[str, ...]) -> None:
        self.device = device
        self.preload = preload
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._answers: dict[int, control.Spawned] = {}
        self._exits: dict[int, int | None] = {}
        self._ids = itertools.count(1)
        self.closed = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        seccomp = filter_fd()
        # a file, not a pipe: nobody reads the server's stderr while it runs, and a full pipe
        # would stop it; read back when it fails to start
        self._stderr = tempfile.TemporaryFile()
        try:
            argv = fork_server_argv(
                host_layout(),
                control_fd=theirs.fileno(),
                filter_fd=seccomp,
                preload=preload,
                device=device,
                gpu_nodes=gpu_nodes(device),
            )
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                pass_fds=(theirs.fileno(), seccomp),
                start_new_session=True,
                env=HOST_ENV,
            )
        except OSError as exc:
            ours.close()
            self._stderr.close()
            raise SandboxError(f"cannot start the fork server: {exc}") from exc
        finally:
            theirs.close()
            os.close(seccomp)
        self.socket = ours
        try:
            hello = self._receive_hello()
        except BaseException:
            self.close()
            raise
        self.pid = hello.pid
        self._reader = threading.Thread(target=self._read, name="fork-server", daemon=True)
        self._reader.start()

    def _receive_hello(self) -> control.Ready:
        ready, _, _ = select.select([self.socket], [], [], STARTUP_SECONDS)
        data = self.socket.recv(control.MAX_MESSAGE) if ready else b""
        if not data:
            self.popen.kill()
            self.popen.wait(timeout=10)
            self._stderr.seek(0)
            stderr = self._stderr.read(1 << 20)
            lines = stderr.decode(errors="replace").strip().splitlines()
            detail = lines[-1][-2000:] if lines else "no answer"  # a traceback's last line
            raise SandboxError(f"the fork server did not start: {detail}")
        try:
            hello = control.decode(data)
        except control.ControlError as exc:
            raise SandboxError(f"the fork server did not start: {exc}") from None
        if not isinstance(hello, control.Ready):
            why = hello.message if isinstance(hello, control.Broken) else f"it answered {hello.kind.value}"
            raise SandboxError(f"the fork server did not start: {why}")
        return hello

    def alive(self) -> bool:
        return not self.closed and self.popen.poll() is None

    def spawn(self, limits: Limits, group: cgroups.CgroupSet | None, uid: int) -> ForkedRunner:
        """A new runner under `limits`, as `uid`, in `group` when given."""
        pipes = [os.pipe() for _ in range(3)]
        ours = [pipes[0][1], pipes[1][0], pipes[2][0]]
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1]]
        files: list[int] = []
        try:
            for path in group.procs_files if group is not None else []:
                files.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
            ident = next(self._ids)
            request = control.Spawn(
                id=ident,
                uid=uid,
                cgroups=len(files),
                disk_bytes=limits.disk_mb * 1024 * 1024,
                env=runner_env(limits, self.device),
                rlimits=rlimits(limits, memory_by_cgroup=group is not None, pids_by_cgroup=group is not None),
            )
            with self._lock:
                if not self.alive():
                    raise SandboxError("the fork server is not running")
                socket.send_fds(self.socket, [control.encode(request)], [*theirs, *files])
            answer = self._wait_answer(ident)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in (*theirs, *files):
                os.close(fd)
        if answer.pid is None:
            for fd in ours:
                os.close(fd)
            raise SandboxError(f"the fork server could not start a runner: {answer.error}")
        return ForkedRunner(self, answer.pid, *ours)

    def _wait_answer(self, ident: int) -> control.Spawned:
        deadline = time.monotonic() + SPAWN_SECONDS
        with self._changed:
            while ident not in self._answers:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.alive():
                    raise SandboxError("the fork server did not answer")
                self._changed.wait(min(remaining, 1.0))
            return self._answers.pop(ident)

    def wait_exit(self, pid: int, timeout: float | None) -> tuple[bool, int | None]:
        """(whether the runner `pid` is known to have exited, its returncode if known)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while pid not in self._exits:
                if not self.alive() and not self._reader.is_alive():
                    return not _exists(pid), None  # its helper died with the server
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False, None
                self._changed.wait(1.0 if remaining is None else min(remaining, 1.0))
            return True, self._exits[pid]

    def forget(self, pid: int) -> None:
        with self._changed:
            self._exits.pop(pid, None)

    def _read(self) -> None:
        while True:
            try:
                data = self.socket.recv(control.MAX_MESSAGE)
            except OSError:
                data = b""
            with self._changed:
                if not data:
                    self._changed.notify_all()
                    return
                try:
                    message = control.decode(data)
                except control.ControlError as exc:
                    log.warning("fork server: %s", exc)
                    message = None
                if isinstance(message, control.Spawned):
                    self._answers[message.id] = message
                elif isinstance(message, control.Exited):
                    self._exits[message.pid] = message.code
                elif message is not None:
                    log.warning("fork server: %s", message)
                self._changed.notify_all()

    def close(self) -> None:
        """Stop the fork server; runners it started die with it."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self._stderr.close()


class ForkedRunner:
    """The part of `subprocess.Popen` that a `SandboxProcess` uses, for a forked runner: its host
    pid (the leader of its own process group), its pipes, and its exit status, which the fork
    server reports."""

    def __init__(self, server: ForkServer, pid: int, stdin: int, stdout: int, stderr: int) -> None:
        self.server = server
        self.pid = pid
        self.stdin: IO[bytes] | None = os.fdopen(stdin, "wb", buffering=0)
        self.stdout: IO[bytes] | None = os.fdopen(stdout, "rb", buffering=0)
        self.stderr: IO[bytes] | None = os.fdopen(stderr, "rb", buffering=0)
        self.returncode: int | None = None
        self._done = False

    def poll(self) -> int | None:
        self._check(0)
        return self.returncode

    def kill_group(self) -> None:
        """SIGKILL the runner's process group, unless the runner is known to be gone: its pid
        was never our child, so once reaped it may be reused."""
        if not self._check(0):
            os.killpg(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if not self._check(timeout):
            raise subprocess.TimeoutExpired(f"runner {self.pid}", timeout or 0)
        return self.returncode if self.returncode is not None else -9

    def _check(self, timeout: float | None) -> bool:
        if not self._done:
            done, code = self.server.wait_exit(self.pid, timeout)
            if done:
                self._done = True
                self.returncode = code if code is not None else -9
                self.server.forget(self.pid)
        return self._done


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ForkingBwrap(BwrapSandbox):
    """The bubblewrap backend, with runners forked from a fork server per device."""

    @property
    def start_method(self) -> str:
        return "fork"

    def __init__(self, preload: tuple[str, ...] = ("torch",), uids: UidPool | None = None) -> None:
        super().__init__(uids)
        self.preload = preload
        self._servers: dict[str, ForkServer] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        """bubblewrap works, and a fork server starts (it is kept for the runners to come)."""
        super().check()
        try:
            self.server("cpu")
        except SandboxError as exc:
            raise SandboxUnavailable(str(exc)) from exc

    def server(self, device: str) -> ForkServer:
        with self._lock:
            server = self._servers.get(device)
            if server is None or not server.alive():
                if server is not None:
                    log.warning("the fork server for %s died; starting another", device)
                    server.close()
                super().check()
                server = self._servers[device] = ForkServer(device, self.preload)
            return server

    def start(self, limits: Limits, *, device: str = "cpu") -> SandboxProcess:
        server = self.server(device)
        with contextlib.ExitStack() as undo:  # on any failure: the cgroup goes, then the uid
            lease = self.uids.lease()
            undo.callback(lease.release)
            group = cgroups.create_or_none(limits)
            if group is not None:
                undo.callback(group.remove)
            runner = server.spawn(limits, group, lease.uid)
            undo.pop_all()
        popen = cast("subprocess.Popen[bytes]", runner)
        return SandboxProcess(popen, backend=self.name, cgroup=group, nested=False, lease=lease)

    def close(self) -> None:
        with self._lock:
            for server in self._servers.values():
                server.close()
            self._servers.clear()
