"""The bubblewrap backend: the local sandbox, used on workers without Docker and in development."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess

from sandbox import cgroups
from sandbox.base import Sandbox, SandboxError, SandboxProcess, SandboxUnavailable
from sandbox.policy import Limits, bwrap_argv, cgroup_join_argv, gpu_nodes, rlimit_argv
from sandbox.runtime import host_layout
from sandbox.seccomp import SeccompUnavailable, filter_fd
from sandbox.uids import UidPool

TOOLS = ("bwrap", "prlimit", "setpriv")
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


class BwrapSandbox(Sandbox):
    name = "bwrap"

    def __init__(self, uids: UidPool | None = None) -> None:
        self.uids = uids or UidPool.from_env()

    def check(self) -> None:
        _check_host()
        self.uids.check()

    def start(self, limits: Limits, *, device: str = "cpu") -> SandboxProcess:
        self.check()
        with contextlib.ExitStack() as undo:  # on any failure: the cgroup goes, then the uid
            lease = self.uids.lease()
            undo.callback(lease.release)
            group = cgroups.create_or_none(limits)
            if group is not None:
                undo.callback(group.remove)
            popen = _popen(limits, device, group, lease.uid)
            undo.pop_all()
        return SandboxProcess(popen, backend=self.name, cgroup=group, nested=True, lease=lease)


def _popen(limits: Limits, device: str, group: cgroups.CgroupSet | None, uid: int) -> subprocess.Popen[bytes]:
    argv = cgroup_join_argv(group.procs_files) if group is not None else []
    argv += rlimit_argv(limits, memory_by_cgroup=group is not None, pids_by_cgroup=group is not None)
    seccomp = filter_fd()
    try:
        argv += bwrap_argv(
            limits, host_layout(), seccomp_fd=seccomp, uid=uid, device=device, gpu_nodes=gpu_nodes(device)
        )
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(seccomp,),
            start_new_session=True,
            env=HOST_ENV,
        )
    except OSError as exc:
        raise SandboxError(f"cannot start bubblewrap: {exc}") from exc
    finally:
        os.close(seccomp)


@functools.cache
def _check_host() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool, path=HOST_ENV["PATH"]) is None]
    if missing:
        raise SandboxUnavailable(
            f"missing {', '.join(missing)} (Debian: apt-get install bubblewrap util-linux)"
        )
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the bwrap backend runs bubblewrap as root and drops the runner to an unprivileged uid; "
            "run the grader as root, or use the docker backend"
        )
    try:
        os.close(filter_fd())
    except SeccompUnavailable as exc:
        raise SandboxUnavailable(f"{exc} (Debian: apt-get install libseccomp2)") from exc
    probe = subprocess.run(
        ["bwrap", "--unshare-net", "--unshare-pid", "--ro-bind", "/", "/", "--", "/bin/true"],
        capture_output=True,
        env=HOST_ENV,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap does not work here: {probe.stderr.decode(errors='replace').strip()}"
        )
