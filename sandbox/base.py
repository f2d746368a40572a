"""The sandbox interface: a backend starts a runner process; the process is measured from outside."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sandbox.cgroups import CgroupSet
from sandbox.policy import Limits

if TYPE_CHECKING:
    from sandbox.uids import UidLease


UID_SETTLE_SECONDS = 5.0  # how long a closed sandbox's killed processes may take to be reaped


class SandboxError(Exception):
    """We could not start or run a sandbox: our failure, never the submission's."""


class SandboxUnavailable(SandboxError):
    """This backend cannot run on this host (missing tool, no permission); carries the reason."""


class SandboxRefused(SandboxUnavailable):
    """The backend asked for is never right here, whatever the host: an unknown name, or `none`
    for code that is not the caller's own. A usage error."""


class Sandbox(ABC):
    """A sandbox backend. `start` launches one fresh runner, used for one submission only."""

    name: ClassVar[str]
    trusted_code_only: ClassVar[bool] = False

    @abstractmethod
    def start(self, limits: Limits, *, device: str = "cpu") -> SandboxProcess:
        """Start a runner under `limits`, given `device` ("cpu" or "cuda:N") and no other; its
        pipes speak the codec protocol."""

    def check(self) -> None:  # noqa: B027 - most backends have nothing to check
        """Raise SandboxUnavailable with the reason when this backend cannot run here."""

    @property
    def image(self) -> str | None:
        return None

    @property
    def image_digest(self) -> str | None:
        """The id (sha256:...) of the image runners start from, where there is one."""
        return None

    @property
    def start_method(self) -> str:
        """How a runner starts: "exec" (a fresh interpreter) or "fork" (from a fork server)."""
        return "exec"

    def close(self) -> None:  # noqa: B027 - most backends hold nothing between runners
        """Release what the backend keeps between runners (a fork server, say)."""


class SandboxProcess:
    """A running runner: its pipes, and what can be measured of it from outside.

    CPU time and peak memory come from the sandbox's cgroup when it has one, otherwise from the
    host's /proc entry of the runner process. Neither is ever asked of the runner itself.
    `lease` is the runner's own uid (`sandbox.uids`), given back once the sandbox is closed.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        *,
        backend: str,
        cgroup: CgroupSet | None,
        nested: bool,
        cleanup: Callable[[], None] | None = None,
        lease: UidLease | None = None,
    ) -> None:
        self.popen = popen
        self.backend = backend
        self.cgroup = cgroup
        self.nested = nested  # the runner is a descendant of the process we started
        self._cleanup = cleanup
        self.lease = lease
        self.uid = None if lease is None else lease.uid
        self.runner_pid: int | None = None if nested else popen.pid
        self.memory_baseline: dict[str, int] = {}  # bytes in use before the submission, per source
        self.killed = False
        self.closed = False
        if popen.stdin is None or popen.stdout is None or popen.stderr is None:
            raise SandboxError("a sandbox needs pipes on stdin, stdout and stderr")
        self.stdin = popen.stdin.fileno()
        self.stdout = popen.stdout.fileno()
        self.stderr = popen.stderr.fileno()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def measured_by(self) -> str:
        return "cgroup" if self.cgroup is not None else "procfs"

    def locate_runner(self) -> None:
        """Find the runner's host pid. Call before any submission code runs: then the runner is
        the only, and deepest, descendant of the process we started."""
        if self.runner_pid is not None:
            return
        chain = [self.pid]
        while True:
            children = _children(chain[-1])
            if not children:
                break
            chain.append(min(children))
        self.runner_pid = chain[-1]

    # ------------------------------------------------------------- measurements

    def cpu_ns(self) -> int:
        """CPU time of the sandbox so far: every process of its cgroup, or (without one) the
        runner's own threads, live and exited, and its reaped children, from /proc."""
        if self.cgroup is not None:
            return self.cgroup.cpu_ns()
        return _process_cpu_ns(self._runner())

    @property
    def cpu_resolution_ns(self) -> int:
        """How fine `cpu_ns` is: exact from a cgroup, clock ticks from /proc."""
        return 1 if self.cgroup is not None else TICK_NS

    def waiting(self) -> bool:
        """True when every thread of the sandbox is asleep (state S: waiting for input, a timer,
        a lock), so none is computing or queued for a core. A busy host leaves a starved runner
        runnable (R), never asleep: time spent asleep is the submission's own waiting."""
        pids = self.cgroup.pids() if self.cgroup is not None else [self._runner()]
        if not pids:
            return False
        for pid in pids:
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                return False
            for task in tasks:
                try:
                    with open(f"/proc/{pid}/task/{task}/stat") as f:
                        state = f.read().rsplit(")", 1)[-1].split(maxsplit=1)[0]
                except (OSError, IndexError):
                    return False
                if state != "S":
                    return False
        return True

    def memory_bytes(self, source: str = "cgroup") -> int:
        if source == "cgroup" and self.cgroup is not None:
            return self.cgroup.memory_bytes()
        return _status_kb(self._runner(), "VmRSS") * 1024

    def memory_peak_bytes(self, source: str = "cgroup") -> int:
        if source == "cgroup" and self.cgroup is not None:
            return self.cgroup.memory_peak_bytes()
        return _status_kb(self._runner(), "VmHWM") * 1024

    def keep_memory_baseline(self) -> None:
        """Remember the memory in use now (the runtime loaded, no submission code run yet), as
        each source sees it: peaks are measured above it."""
        self.memory_baseline = {source: self.memory_bytes(source) for source in ("cgroup", "procfs")}

    def watch_memory_peak(self) -> MemoryPeak:
        """Start tracking the peak afresh; read it with `MemoryPeak.above_baseline`."""
        return MemoryPeak(self, self.reset_memory_peak())

    def reset_memory_peak(self) -> str:
        """Restart peak tracking; returns the source that now tracks it ("cgroup" or "procfs"),
        to read the peak and the baseline from that same source."""
        if self.cgroup is not None and self.cgroup.reset_memory_peak():
            return "cgroup"
        try:
            Path(f"/proc/{self._runner()}/clear_refs").write_text("5")
        except OSError:
            pass
        return "procfs"

    def oom_killed(self) -> bool:
        if self.cgroup is None:
            return False
        try:
            return self.cgroup.oom_kills() > 0
        except OSError:
            return False

    def _runner(self) -> int:
        self.locate_runner()
        return self.runner_pid if self.runner_pid is not None else self.pid

    # ------------------------------------------------------------- lifecycle

    def poll(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        self.killed = True
        kill_group = getattr(self.popen, "kill_group", None)  # a forked runner knows when it may
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if kill_group is not None:
                kill_group()
            else:
                os.killpg(self.popen.pid, signal.SIGKILL)
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.kill_all()

    def close(self) -> None:
        """Kill everything the sandbox started, remove all trace of it, then give its uid back."""
        if self.closed:
            return
        self.closed = True
        if self.popen.poll() is None:
            self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            if self.cgroup is not None:
                self.cgroup.remove()
        except OSError:
            pass  # a group that would not go away is reaped when the next sandbox starts
        finally:
            if self._cleanup is not None:
                self._cleanup()
            if self.lease is not None:
                self.lease.release(settle=UID_SETTLE_SECONDS)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _process_cpu_ns(pid: int) -> int:
    """utime + stime + cutime + cstime: the whole thread group, exited threads included, and its
    reaped children (per-thread schedstat would miss threads that have exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[-1].split()
    except OSError:
        return 0
    return sum(int(v) for v in fields[11:15]) * TICK_NS


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class MemoryPeak:
    """A peak being tracked in a sandbox, by the one source (`cgroup` or `procfs`) that tracks it."""

    process: SandboxProcess
    source: str

    def above_baseline(self) -> int:
        """The peak since tracking began, less the memory in use before the submission."""
        peak = self.process.memory_peak_bytes(self.source)
        return max(peak - self.process.memory_baseline.get(self.source, 0), 0)
