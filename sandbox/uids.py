"""Sandbox uids: every live runner runs as a uid of its own, from a block kept for sandboxes.

The kernel counts some resources per uid, not per process or namespace: queued signals
(RLIMIT_SIGPENDING, `SigQ` in /proc/self/status), POSIX message-queue bytes, inotify instances,
pipe buffer pages, processes (RLIMIT_NPROC). Runners that shared a uid shared those counters: one
could use up a limit for all the others, or read how much they used. So no two live runners
share a uid, whichever worker process on the host started them.

A uid is leased with an exclusive `flock` on `<directory>/<uid>.lock`, held by the process that
started the runner until the runner is closed (killed whole, its cgroup removed). The kernel
drops the lock when that process dies, so the uids of a crashed worker come back by themselves;
and a uid is handed out only when no process on the host, live or zombie, still runs as it (the
leftovers of a crashed worker, say), so a uid is never shared with what is left of its last
runner either.

`GRADER_SANDBOX_UIDS` (FIRST:COUNT, default 2000000000:4096) is the block; no account may use
it. The default lies above the subordinate ids `useradd` hands out (100000 up to 600100000) and
inside what systemd leaves unused (0x70000000 to 0x7FFDFFFF). `GRADER_SANDBOX_UID_DIR` (default
/run/grader-uids) holds the locks: every worker of a host must use the same one.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.base import SandboxError, SandboxUnavailable

UIDS_ENV = "GRADER_SANDBOX_UIDS"
DIR_ENV = "GRADER_SANDBOX_UID_DIR"
DEFAULT_UIDS = "2000000000:4096"
DEFAULT_DIR = "/run/grader-uids"
LOWEST = 65536  # above every system, regular, dynamic and `nobody` uid
HIGHEST = 2**31 - 2  # below what reads as negative in a signed 32-bit uid


@dataclass
class UidLease:
    """One leased uid; the lock is held until `release`."""

    uid: int
    fd: int | None

    def release(self, settle: float = 0.0) -> None:
        """Give the uid back. Call once its runner was killed, every process of it; with `settle`,
        first wait up to that many seconds for the last of them to be reaped (killed processes
        take a moment; one that never goes keeps the uid out of use anyway, see `lease`)."""
        if self.fd is None:
            return
        deadline = time.monotonic() + settle
        while settle and self.uid in uids_in_use() and time.monotonic() < deadline:
            time.sleep(0.01)
        fd, self.fd = self.fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)  # for every copy of the descriptor a fork may have made
        os.close(fd)


@dataclass(frozen=True)
class UidPool:
    """The block of uids reserved for sandboxes, and the directory of their locks."""

    first: int
    count: int
    directory: Path

    def __post_init__(self) -> None:
        if self.count < 1 or self.first < LOWEST or self.last > HIGHEST:
            raise SandboxUnavailable(
                f"sandbox uids {self.first}:{self.count} must lie within {LOWEST}..{HIGHEST} ({UIDS_ENV})"
            )

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.first <= uid <= self.last

    @classmethod
    def from_env(cls) -> UidPool:
        spec = os.environ.get(UIDS_ENV, DEFAULT_UIDS)
        first, colon, count = spec.partition(":")
        if not (colon and first.isdigit() and count.isdigit()):
            raise SandboxUnavailable(f"{UIDS_ENV}={spec!r}: expected FIRST:COUNT, e.g. {DEFAULT_UIDS}")
        return cls(int(first), int(count), Path(os.environ.get(DIR_ENV, DEFAULT_DIR)))

    def check(self) -> None:
        """Raise SandboxUnavailable when the lock directory cannot be used."""
        self._prepare()

    def lease(self) -> UidLease:
        """A uid that no live runner holds and no process runs as, locked until released."""
        self._prepare()
        start = secrets.randbelow(self.count)  # workers starting together rarely try the same one
        for offset in range(self.count):
            uid = self.first + (start + offset) % self.count
            fd = self._lock(uid)
            if fd is None:
                continue
            if uid not in uids_in_use():  # looked at under the lock: nothing can start as it now
                return UidLease(uid, fd)
            UidLease(uid, fd).release()
        raise SandboxError(
            f"no free sandbox uid in {self.first}..{self.last}: each is held by a live runner or "
            f"still used by a leftover process (a larger block: {UIDS_ENV})"
        )

    def _lock(self, uid: int) -> int | None:
        path = self.directory / f"{uid}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot open {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as exc:
            raise SandboxUnavailable(
                f"cannot keep sandbox uid locks in {self.directory}: {exc.strerror} ({DIR_ENV})"
            ) from None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise SandboxUnavailable(
                f"{self.directory} must be a directory of this user's that nobody else can write ({DIR_ENV})"
            )


def uids_in_use(proc: str = "/proc") -> set[int]:
    """Every uid (real, effective, saved or filesystem) a process on the host runs as; zombies
    included, since they keep their queued signals and their place in RLIMIT_NPROC until reaped."""
    found: set[int] = set()
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            found.update(_status_uids(f"{proc}/{entry.name}/status"))
    return found


def _status_uids(path: str) -> list[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # it exited meanwhile
        return []
    try:
        status = os.read(fd, 4096)
    except OSError:
        return []
    finally:
        os.close(fd)
    start = status.find(b"\nUid:") + 1
    end = status.find(b"\n", start)
    return [int(field) for field in status[start:end].split()[1:]] if start and end > 0 else []
