"""The seccomp filter for bubblewrap sandboxes, compiled from the deny list in `policy`.

libseccomp (through pyseccomp) resolves syscall names for the host's architecture and writes the
BPF program; bubblewrap loads it with `--seccomp FD` just before it runs the runner.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

from sandbox.policy import CLONE_NAMESPACE_FLAGS, DENIED_SYSCALLS, DENY_ERRNO, ENOSYS_SYSCALLS


class SeccompUnavailable(Exception):
    """libseccomp is missing; the sandbox cannot be hardened as the policy requires."""


@functools.cache
def compiled_filter() -> bytes:
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # OSError: the shared library is missing
        raise SeccompUnavailable(f"libseccomp is not available: {exc}") from exc
    flt = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED_SYSCALLS:
        _deny(flt, sc.ERRNO(DENY_ERRNO), name)
    for name in ENOSYS_SYSCALLS:
        _deny(flt, sc.ERRNO(errno.ENOSYS), name)
    for flag in CLONE_NAMESPACE_FLAGS:
        flt.add_rule(sc.ERRNO(DENY_ERRNO), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


def _deny(flt: object, action: int, name: str) -> None:
    try:
        flt.add_rule(action, name)  # type: ignore[attr-defined]
    except OSError:
        pass  # a syscall this architecture does not have


def filter_fd() -> int:
    """A readable descriptor holding the compiled filter, for `bwrap --seccomp FD`."""
    data = compiled_filter()
    fd = os.memfd_create("grader-seccomp", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
