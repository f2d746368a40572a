"""Sandbox policy as data: the limits, and the one place that turns them into a command line.

Everything here is pure: unit tests assert on what these functions return, without a sandbox.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The user a Docker image starts as when nobody names one. Runners never run as it: each live
# runner gets a uid of its own from the block `sandbox.uids` leases out.
SANDBOX_UID = 65534
CPU_PERIOD_US = 100_000  # the CFS period of a sandbox's CPU quota, as Docker's --cpus uses
WORK_DIR = "/work"
RUNTIME_DIR = "/opt/grader/runtime"
SITE_DIR = "/opt/grader/site"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandbox, declared per exercise on top of these defaults."""

    # Time is CPU time, so that a verdict does not depend on how busy the host is; wall time is
    # only a generous backstop, for a submission that waits instead of computing.
    call_seconds: float = 20.0  # CPU time of one call from a correctness test (wall backstop 4x + 10 s)
    cpu_seconds: int = 180  # CPU time of the whole sandbox, tests and performance phase included
    wall_seconds: float = 600.0  # wall-clock backstop for the whole sandbox lifetime
    memory_mb: int = 2048
    pids: int = 64
    output_kb: int = 256  # everything the submission prints, stdout and stderr together
    disk_mb: int = 64
    open_files: int = 256
    message_mb: int = 256  # the largest frame the harness accepts from the runner
    cpus: float = 1.0  # CPUs the whole sandbox may keep busy at once (a CFS quota, as `--cpus`)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"limit {name} must be positive, got {value!r}")
        if self.wall_seconds < self.cpu_seconds:
            raise ValueError(
                f"limit wall_seconds ({self.wall_seconds:g}) is a backstop behind cpu_seconds "
                f"({self.cpu_seconds}): make it at least as large"
            )

    @classmethod
    def from_mapping(cls, data: dict[str, Any], base: Limits | None = None) -> Limits:
        """Limits from a mapping (an exercise's [limits] table) over `base` or the defaults."""
        defaults = asdict(base or cls())
        if "wall_seconds" in data and "cpu_seconds" not in data:
            # written when the sandbox's lifetime was limited in wall time: that budget is now
            # CPU time, and the wall clock only its backstop
            wall = data["wall_seconds"]
            if isinstance(wall, int | float) and not isinstance(wall, bool) and wall > 0:
                data = {
                    **data,
                    "cpu_seconds": math.ceil(wall),
                    "wall_seconds": max(wall, defaults["wall_seconds"]),
                }
        unknown = set(data) - set(defaults)
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(sorted(unknown))}")
        merged = dict(defaults)
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"limit {name} must be a number, got {value!r}")
            if isinstance(defaults[name], int):
                if not float(value).is_integer():
                    raise ValueError(f"limit {name} must be a whole number, got {value!r}")
                value = int(value)
            merged[name] = value
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Mount:
    """One entry of the sandbox's filesystem: a read-only bind, a directory, or a symlink."""

    kind: str  # "ro-bind" | "dir" | "symlink" | "mask"
    target: str
    source: str = ""


@dataclass(frozen=True)
class Layout:
    """What the runner needs from the host: its interpreter and libraries, nothing else."""

    mounts: tuple[Mount, ...]
    python: str
    site_dirs: tuple[str, ...]
    runtime_dir: str = RUNTIME_DIR
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    prelude: str = ""  # Python run first, before the runner is imported

    def bootstrap(self, entry: str = "from grader.runner.server import main; main()") -> list[str]:
        code = self.prelude + (
            f"import sys; sys.path[:0] = [{self.runtime_dir!r}]; sys.path += {list(self.site_dirs)!r}; "
            + entry
        )
        return [self.python, "-I", "-S", "-B", "-c", code]


# Syscalls the runner never needs; denied with EPERM by the seccomp filter (defence in depth: the
# runner already holds no capabilities and no privileged uid).
DENIED_SYSCALLS: tuple[str, ...] = (
    "acct", "add_key", "bpf", "chroot", "clock_adjtime", "clock_settime", "delete_module",
    "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "init_module",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "ioperm", "iopl", "kexec_file_load",
    "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
    "name_to_handle_at", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "ptrace", "quotactl", "reboot", "request_key",
    "setdomainname", "sethostname", "setns", "settimeofday", "swapoff", "swapon", "syslog",
    "umount2", "unshare", "userfaultfd", "vhangup",
)  # fmt: skip
# clone() is allowed for threads and processes but not for new namespaces; clone3() answers ENOSYS
# so that libc falls back to clone(), whose flags a classic filter can inspect.
CLONE_NAMESPACE_FLAGS: tuple[int, ...] = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
ENOSYS_SYSCALLS: tuple[str, ...] = ("clone3",)
DENY_ERRNO = errno.EPERM


def runner_env(limits: Limits, device: str = "cpu") -> dict[str, str]:
    """The runner's whole environment: nothing inherited, nothing secret, one thread."""
    env = {
        "HOME": WORK_DIR,
        "TMPDIR": f"{WORK_DIR}/tmp",
        "LANG": "C.UTF-8",
        "PATH": "/usr/bin",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        # The same allocator settings in every runner. (Forcing small mmap thresholds made every
        # large tensor a fresh mapping with page faults, which slowed vectorised code relative to
        # loops; memory is measured against a settled baseline instead, see measurement.protocol.)
        "MALLOC_ARENA_MAX": "2",
    }
    index = cuda_index(device)
    env["CUDA_VISIBLE_DEVICES"] = "" if index is None else str(index)  # exactly one GPU, or none
    if index is None:
        # Triton kernels run in Triton's interpreter on the CPU (read when triton is imported)
        env["TRITON_INTERPRET"] = "1"
    return env


def cuda_index(device: str) -> int | None:
    """N for "cuda:N" (and 0 for "cuda"), None for the CPU; anything else is an error."""
    if device == "cpu":
        return None
    name, _, index = device.partition(":")
    if name != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"unknown device {device!r}: use cpu or cuda:N")
    return int(index or 0)


GPU_CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")


def gpu_nodes(device: str, existing: Callable[[str], bool] = os.path.exists) -> tuple[str, ...]:
    """The device nodes one GPU needs: its own, and the driver's control nodes."""
    index = cuda_index(device)
    if index is None:
        return ()
    return tuple(n for n in (f"/dev/nvidia{index}", *GPU_CONTROL_NODES) if existing(n))


def rlimits(limits: Limits, *, memory_by_cgroup: bool, pids_by_cgroup: bool) -> dict[str, tuple[int, int]]:
    """The limits that hold per process whether or not cgroups exist, as (soft, hard) pairs."""
    cpu = int(limits.cpu_seconds)
    disk = limits.disk_mb * 1024 * 1024
    found = {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_NOFILE": (limits.open_files, limits.open_files),
        "RLIMIT_CORE": (0, 0),
        "RLIMIT_FSIZE": (disk, disk),
        "RLIMIT_MEMLOCK": (0, 0),
    }
    if not memory_by_cgroup:
        memory = limits.memory_mb * 1024 * 1024
        found["RLIMIT_DATA"] = (memory, memory)
    if not pids_by_cgroup:
        found["RLIMIT_NPROC"] = (limits.pids, limits.pids)
    return found


def rlimit_argv(limits: Limits, *, memory_by_cgroup: bool, pids_by_cgroup: bool) -> list[str]:
    """`prlimit` options for `rlimits`."""
    pairs = rlimits(limits, memory_by_cgroup=memory_by_cgroup, pids_by_cgroup=pids_by_cgroup)
    options = [
        f"--{name.removeprefix('RLIMIT_').lower()}={soft}:{hard}" for name, (soft, hard) in pairs.items()
    ]
    return ["prlimit", *options, "--"]


def cpu_quota_us(limits: Limits, period_us: int = CPU_PERIOD_US) -> int:
    """The CFS quota that lets the sandbox use `limits.cpus` CPUs in each period (the kernel
    refuses quotas under 1 ms)."""
    return max(1000, round(limits.cpus * period_us))


def bwrap_argv(
    limits: Limits,
    layout: Layout,
    *,
    seccomp_fd: int | None,
    uid: int,
    device: str = "cpu",
    gpu_nodes: Sequence[str] = (),
) -> list[str]:
    """The bubblewrap command line that starts one runner as `uid` (its own, see `sandbox.uids`).

    bwrap runs as root without a user namespace and `setpriv` drops the runner to that
    unprivileged host uid, so the runner owns nothing on the host even through the read-only
    binds, and shares no per-user kernel counter with any other runner.
    """
    argv = [
        "bwrap",
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox",
    ]  # fmt: skip
    argv += _filesystem_argv(limits.disk_mb, layout, gpu_nodes)
    env = {**runner_env(limits, device), **dict(layout.extra_env)}
    for key in sorted(env):
        argv += ["--setenv", key, env[key]]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--", *setpriv_argv(uid), *layout.bootstrap()]
    return argv


def fork_server_argv(
    layout: Layout,
    *,
    control_fd: int,
    filter_fd: int,
    preload: Sequence[str],
    device: str = "cpu",
    gpu_nodes: Sequence[str] = (),
) -> list[str]:
    """The bubblewrap command line of a fork server (`grader.runner.zygote`): the runners'
    filesystem and environment, but root with its capabilities and in the host's pid namespace,
    since it makes each runner's namespaces and reports host pids. It runs no submission code;
    each runner it forks drops all of that before it serves a frame."""
    argv = [
        "bwrap",
        "--unshare-ipc", "--unshare-net", "--unshare-uts",
        "--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox", "--cap-add", "ALL",
    ]  # fmt: skip
    argv += _filesystem_argv(1, layout, gpu_nodes)
    env = {**runner_env(Limits(), device), **dict(layout.extra_env)}
    for key in sorted(env):
        argv += ["--setenv", key, env[key]]
    entry = f"from grader.runner.zygote import main; main({control_fd}, {filter_fd}, {list(preload)!r})"
    return [*argv, "--", *layout.bootstrap(entry)]


def _filesystem_argv(disk_mb: int, layout: Layout, gpu_nodes: Sequence[str]) -> list[str]:
    argv = _mount_argv(layout.mounts)
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for node in gpu_nodes:  # one GPU only: its node and the driver's control nodes
        argv += ["--dev-bind", node, node]
    argv += ["--perms", "0777", "--size", str(disk_mb * 1024 * 1024), "--tmpfs", WORK_DIR]
    argv += ["--perms", "1777", "--dir", f"{WORK_DIR}/tmp", "--symlink", f"{WORK_DIR}/tmp", "/tmp"]
    return [*argv, "--chdir", WORK_DIR]


def setpriv_argv(uid: int) -> list[str]:
    return [
        "/usr/bin/setpriv",
        f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
    ]  # fmt: skip


def _mount_argv(mounts: Sequence[Mount]) -> list[str]:
    argv: list[str] = []
    for mount in mounts:
        if mount.kind == "ro-bind":
            argv += ["--ro-bind", mount.source, mount.target]
        elif mount.kind == "dir":
            argv += ["--perms", "0755", "--dir", mount.target]
        elif mount.kind == "symlink":
            argv += ["--symlink", mount.source, mount.target]
        elif mount.kind == "mask":
            argv += ["--ro-bind", "/dev/null", mount.target]
        else:
            raise ValueError(f"unknown mount kind {mount.kind!r}")
    return argv


def cgroup_join_argv(procs_files: Sequence[str]) -> list[str]:
    """A shell prefix that moves itself into the sandbox's cgroups, then execs the rest.

    The paths are ours (generated names under our own cgroup directories), passed as arguments,
    never spliced into the script.
    """
    script = (
        'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
    )
    return ["/bin/sh", "-c", script, "sandbox-join", str(len(procs_files)), *procs_files]
