"""No sandbox at all: the runner as a plain subprocess, for an instructor's own code only.

`sandbox.select_backend` refuses it for anything but the caller's own code: only `grader exercise
validate --sandbox none` uses it, on solutions the person running the command wrote. It runs as
the caller, with the same cgroup limits (memory, pids, CPU) as a sandbox.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile

from sandbox import cgroups
from sandbox.base import Sandbox, SandboxError, SandboxProcess
from sandbox.policy import Limits, cgroup_join_argv, rlimit_argv, runner_env
from sandbox.runtime import local_layout


class UnsandboxedRunner(Sandbox):
    name = "none"
    trusted_code_only = True

    def start(self, limits: Limits, *, device: str = "cpu") -> SandboxProcess:
        work = tempfile.mkdtemp(prefix="grader-none-")
        os.mkdir(os.path.join(work, "tmp"))
        group = cgroups.create_or_none(limits)
        argv = cgroup_join_argv(group.procs_files) if group is not None else []
        argv += rlimit_argv(limits, memory_by_cgroup=group is not None, pids_by_cgroup=True)
        argv += local_layout().bootstrap()
        env = {**runner_env(limits, device), "HOME": work, "TMPDIR": os.path.join(work, "tmp")}
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=work,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            if group is not None:
                group.remove()
            raise SandboxError(f"cannot start the runner: {exc}") from exc
        cleanup = functools.partial(shutil.rmtree, work, ignore_errors=True)
        return SandboxProcess(popen, backend=self.name, cgroup=group, nested=False, cleanup=cleanup)
