"""Per-sandbox cgroups: memory, pids and CPU limits, and the clocks read from outside the sandbox.

Both hierarchies are supported: cgroup v2 (the default on current distributions, used when its
memory, pids and cpu controllers are available) and cgroup v1 (memory, pids, cpu and cpuacct
controllers). The CPU limit is a CFS quota of `Limits.cpus` CPUs per period (`cpu.max`, or
`cpu.cfs_quota_us` over `cpu.cfs_period_us`), as Docker's `--cpus` sets it. Each sandbox gets
its own group under `grader/`; groups left by a process that no longer exists are removed when
the next one is created.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.policy import CPU_PERIOD_US, Limits, cpu_quota_us

PARENT = "grader"
_sequence = itertools.count()


class CgroupSet(ABC):
    """The cgroups of one sandbox."""

    @property
    @abstractmethod
    def procs_files(self) -> list[str]:
        """Files a process writes its own pid into to join this set."""

    @abstractmethod
    def cpu_ns(self) -> int:
        """CPU time used by every process of the set, in nanoseconds."""

    @abstractmethod
    def memory_bytes(self) -> int: ...

    @abstractmethod
    def memory_peak_bytes(self) -> int: ...

    @abstractmethod
    def reset_memory_peak(self) -> bool:
        """Restart peak tracking from the current usage; False when the kernel cannot."""

    @abstractmethod
    def oom_kills(self) -> int: ...

    @abstractmethod
    def pids(self) -> list[int]: ...

    @abstractmethod
    def directories(self) -> list[Path]: ...

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for directory in self.directories():
            while directory.exists():
                self.kill_all()
                try:
                    directory.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)


@dataclass
class CgroupV1(CgroupSet):
    memory: Path
    pids_dir: Path
    cpuacct: Path
    cpu: Path

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.directories()]

    def directories(self) -> list[Path]:
        return list(dict.fromkeys([self.memory, self.pids_dir, self.cpuacct, self.cpu]))

    def cpu_ns(self) -> int:
        return int(_read(self.cpuacct / "cpuacct.usage"))

    def memory_bytes(self) -> int:
        return int(_read(self.memory / "memory.usage_in_bytes"))

    def memory_peak_bytes(self) -> int:
        return int(_read(self.memory / "memory.max_usage_in_bytes"))

    def reset_memory_peak(self) -> bool:
        _write(self.memory / "memory.max_usage_in_bytes", "0")
        return True

    def oom_kills(self) -> int:
        fields = dict(line.split() for line in _read(self.memory / "memory.oom_control").splitlines())
        return int(fields.get("oom_kill", 0))

    def pids(self) -> list[int]:
        return _procs(self.pids_dir)

    @classmethod
    def create(cls, mounts: dict[str, Path], name: str, limits: Limits) -> CgroupV1:
        made: dict[Path, Path] = {}  # one group per hierarchy: cpu and cpuacct often share one
        for controller in REQUIRED_V1:
            mount = mounts[controller]
            if mount not in made:
                made[mount] = _make(mount / PARENT, name)
        dirs = {c: made[mounts[c]] for c in REQUIRED_V1}
        group = cls(memory=dirs["memory"], pids_dir=dirs["pids"], cpuacct=dirs["cpuacct"], cpu=dirs["cpu"])
        with _removed_on_error(group):
            memory = limits.memory_mb * 1024 * 1024
            _write(group.memory / "memory.limit_in_bytes", str(memory))
            with contextlib.suppress(OSError):  # absent without swap accounting
                _write(group.memory / "memory.memsw.limit_in_bytes", str(memory))
            _write(group.pids_dir / "pids.max", str(limits.pids))
            _write(group.cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(group.cpu / "cpu.cfs_quota_us", str(cpu_quota_us(limits)))
        return group


@dataclass
class CgroupV2(CgroupSet):
    path: Path

    @property
    def procs_files(self) -> list[str]:
        return [str(self.path / "cgroup.procs")]

    def directories(self) -> list[Path]:
        return [self.path]

    def cpu_ns(self) -> int:
        stats = dict(line.split() for line in _read(self.path / "cpu.stat").splitlines())
        return int(stats["usage_usec"]) * 1000

    def memory_bytes(self) -> int:
        return int(_read(self.path / "memory.current"))

    def memory_peak_bytes(self) -> int:
        return int(_read(self.path / "memory.peak"))

    def reset_memory_peak(self) -> bool:
        try:  # writable since Linux 6.12
            _write(self.path / "memory.peak", "0")
        except OSError:
            return False
        return True

    def oom_kills(self) -> int:
        events = dict(line.split() for line in _read(self.path / "memory.events").splitlines())
        return int(events.get("oom_kill", 0))

    def pids(self) -> list[int]:
        return _procs(self.path)

    def kill_all(self) -> None:
        try:
            _write(self.path / "cgroup.kill", "1")
        except OSError:
            super().kill_all()

    @classmethod
    def create(cls, root: Path, name: str, limits: Limits) -> CgroupV2:
        parent = root / PARENT
        _enable_controllers(root)
        parent.mkdir(exist_ok=True)
        _enable_controllers(parent)
        group = cls(path=_make(parent, name))
        with _removed_on_error(group):
            _write(group.path / "memory.max", str(limits.memory_mb * 1024 * 1024))
            with contextlib.suppress(OSError):
                _write(group.path / "memory.swap.max", "0")
            _write(group.path / "pids.max", str(limits.pids))
            _write(group.path / "cpu.max", f"{cpu_quota_us(limits)} {CPU_PERIOD_US}")
        return group


REQUIRED_V2 = {"memory", "pids", "cpu"}
REQUIRED_V1 = ("memory", "pids", "cpuacct", "cpu")


def discover(mountinfo: str = "/proc/self/mountinfo") -> tuple[str, dict[str, Path]]:
    """Which hierarchy to use: ("v2", {"": root}), ("v1", {controller: mount}), or ("", {})."""
    v1: dict[str, Path] = {}
    v2: list[Path] = []
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            mount_point = Path(fields[4].replace("\\040", " "))
            if tail[0] == "cgroup2":
                v2.append(mount_point)
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    v1.setdefault(option, mount_point)
    for root in v2:
        with contextlib.suppress(OSError):
            if REQUIRED_V2 <= set(_read(root / "cgroup.controllers").split()):
                return "v2", {"": root}
    if all(c in v1 for c in REQUIRED_V1):
        return "v1", {c: v1[c] for c in REQUIRED_V1}
    return "", {}


class CgroupUnavailable(Exception):
    """This host offers no cgroups we can use; limits fall back to rlimits."""


def create(limits: Limits) -> CgroupSet:
    """A fresh cgroup set for one sandbox, or CgroupUnavailable with the reason."""
    if os.geteuid() != 0:
        raise CgroupUnavailable("not running as root")
    kind, mounts = discover()
    name = f"g{os.getpid()}-{next(_sequence)}-{secrets.token_hex(4)}"
    try:
        if kind == "v2":
            reap(mounts[""] / PARENT)
            return CgroupV2.create(mounts[""], name, limits)
        if kind == "v1":
            for controller in REQUIRED_V1:
                reap(mounts[controller] / PARENT)
            return CgroupV1.create(mounts, name, limits)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot create a cgroup: {exc}") from exc
    raise CgroupUnavailable(
        "no cgroup v2 with memory, pids and cpu, nor cgroup v1 memory, pids, cpuacct and cpu"
    )


def create_or_none(limits: Limits) -> CgroupSet | None:
    """A fresh cgroup set, or None where this host has none (limits then fall back to rlimits)."""
    try:
        return create(limits)
    except CgroupUnavailable:
        return None


def reap(parent: Path) -> None:
    """Remove groups whose creating process is gone (a killed worker leaves them behind)."""
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        owner = child.name[1:].split("-", 1)[0]
        if not child.is_dir() or not child.name.startswith("g") or not owner.isdigit():
            continue
        if process_alive(int(owner)):
            continue
        for pid in _procs(child):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            child.rmdir()


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on the host (ours to signal or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _removed_on_error(group: CgroupSet) -> Iterator[None]:
    """A group whose limits could not all be set is removed, not left behind half-limited."""
    try:
        yield
    except OSError:
        with contextlib.suppress(OSError):
            group.remove(timeout=0)
        raise


def _make(parent: Path, name: str) -> Path:
    parent.mkdir(exist_ok=True)
    path = parent / name
    path.mkdir()
    return path


def _enable_controllers(path: Path) -> None:
    enabled = set(_read(path / "cgroup.subtree_control").split())
    missing = REQUIRED_V2 - enabled
    if missing:
        _write(path / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(missing)))


def _procs(path: Path) -> list[int]:
    try:
        return [int(p) for p in _read(path / "cgroup.procs").split()]
    except (OSError, ValueError):
        return []


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)
