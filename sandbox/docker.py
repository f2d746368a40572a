"""The Docker backend: one fresh, hardened container per runner.

Two kinds of image work with it, told apart by the image's `grader.runtime` label:
- `image`: the production images of `sandbox/images/` (Python, torch and the runner inside);
- `host`: an image that holds nothing but mount points, made by `grader sandbox build` where
  no registry is reachable; the host's interpreter, libraries and runner are bound read-only
  into it, exactly as bubblewrap binds them.

Every container gets: no network, a read-only root, a size-capped tmpfs work dir, a uid of its
own (leased from `sandbox.uids` as for bubblewrap, and given back once the container is dead),
no capabilities, no-new-privileges, our seccomp profile, pids/memory (swap included)/CPU limits,
a private IPC namespace, no core dumps, an environment of our own, and labels naming the worker
that started it, so that `reap()` can remove the strays of a worker that died. CPU time and memory
are read from the container's cgroup, outside the container. A GPU exercise gets exactly one
device through a device request (`--gpus device=N`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from sandbox import cgroups
from sandbox.base import Sandbox, SandboxError, SandboxProcess, SandboxUnavailable
from sandbox.policy import (
    CLONE_NAMESPACE_FLAGS,
    DENIED_SYSCALLS,
    DENY_ERRNO,
    ENOSYS_SYSCALLS,
    RUNTIME_DIR,
    SANDBOX_UID,
    WORK_DIR,
    Layout,
    Limits,
    cuda_index,
    runner_env,
)
from sandbox.runtime import host_layout
from sandbox.uids import UidPool

DEFAULT_IMAGE = "grader-runtime:local"
LABEL = "grader.sandbox"
OWNER_LABEL = "grader.owner"
CGROUP_PARENT = "/grader-docker"
DOCKER_TIMEOUT = 60


def docker_argv(
    limits: Limits,
    image: str,
    layout: Layout,
    *,
    name: str,
    owner: str,
    seccomp_profile: str,
    uid: int,
    device: str = "cpu",
) -> list[str]:
    """The `docker create` command line for one runner as `uid` (pure: unit tests assert on it)."""
    memory = f"{limits.memory_mb}m"
    size = limits.disk_mb * 1024 * 1024
    argv = [
        "docker", "create", "--interactive", "--name", name,
        "--label", f"{LABEL}=1", "--label", f"{OWNER_LABEL}={owner}",
        "--network", "none", "--read-only", "--ipc", "private", "--hostname", "sandbox",
        "--user", f"{uid}:{uid}", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--security-opt", f"seccomp={seccomp_profile}",
        "--pids-limit", str(limits.pids), "--memory", memory, "--memory-swap", memory,
        "--cpus", f"{limits.cpus:g}", "--ulimit", "core=0", "--ulimit", f"nofile={limits.open_files}",
        "--ulimit", f"cpu={limits.cpu_seconds}", "--cgroup-parent", CGROUP_PARENT,
        "--tmpfs", f"{WORK_DIR}:rw,size={size},mode=1777,nosuid,nodev",
        "--tmpfs", f"{WORK_DIR}/tmp:rw,size={size},mode=1777,nosuid,nodev",
        "--workdir", WORK_DIR, "--log-driver", "none",
    ]  # fmt: skip
    for mount in layout.mounts:
        if mount.kind == "ro-bind":
            argv += ["--mount", f"type=bind,source={mount.source},target={mount.target},readonly"]
        elif mount.kind == "mask":
            argv += ["--mount", f"type=bind,source=/dev/null,target={mount.target},readonly"]
        # "dir" and "symlink" entries are part of the image itself (see `host_image_tar`)
    index = cuda_index(device)
    if index is not None:
        argv += ["--gpus", f"device={index}"]
    env = {**runner_env(limits, device), **dict(layout.extra_env)}
    for key in sorted(env):
        argv += ["--env", f"{key}={env[key]}"]
    argv += ["--entrypoint", layout.python, image, *layout.bootstrap()[1:]]
    return argv


def seccomp_profile() -> dict[str, object]:
    """Our deny list as a Docker seccomp profile (the same rules bubblewrap loads)."""
    rules: list[dict[str, object]] = [
        {"names": list(DENIED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": DENY_ERRNO},
        {"names": list(ENOSYS_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": 38},  # ENOSYS
    ]
    for flag in CLONE_NAMESPACE_FLAGS:
        rules.append(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": DENY_ERRNO,
                "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
            }
        )
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}


@functools.cache
def _profile_path() -> str:
    directory = Path(tempfile.gettempdir()) / "grader-docker"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / "seccomp.json"
    path.write_text(json.dumps(seccomp_profile()))
    return str(path)


def image_layout(image_labels: dict[str, str]) -> Layout:
    """How to start the runner in an image: host binds, or what the image holds."""
    if image_labels.get("grader.runtime") == "host":
        layout = host_layout()
    else:
        python = image_labels.get("grader.python", "python3")
        site = tuple(path for path in image_labels.get("grader.site", "").split(":") if path)
        layout = Layout(mounts=(), python=python, site_dirs=site, runtime_dir=RUNTIME_DIR)
    # Docker always sets HOSTNAME; the runner's environment is ours alone.
    return dataclasses.replace(layout, prelude="import os; os.environ.pop('HOSTNAME', None); ")


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DockerSandbox(Sandbox):
    name = "docker"

    def __init__(self, image: str | None = None, uids: UidPool | None = None) -> None:
        self._image = image or os.environ.get("GRADER_DOCKER_IMAGE", DEFAULT_IMAGE)
        self.uids = uids or UidPool.from_env()
        self._reaped = False

    @property
    def image(self) -> str | None:
        return self._image

    @functools.cached_property
    def image_digest(self) -> str | None:  # cached: an image is not rebuilt under a worker
        done = _docker(["image", "inspect", "--format", "{{.Id}}", self._image], check=False)
        if done.returncode != 0:
            return None
        return done.stdout.strip() or None

    def check(self) -> None:
        if shutil.which("docker") is None:
            raise SandboxUnavailable("the docker command is missing (Debian: apt-get install docker.io)")
        self._labels  # noqa: B018 - inspecting the image is the check
        self.uids.check()

    @functools.cached_property
    def _labels(self) -> dict[str, str]:
        """The image's labels (how to start the runner in it); raises while it cannot be seen."""
        done = _docker(["image", "inspect", "--format", "{{json .Config.Labels}}", self._image], check=False)
        if done.returncode != 0:
            message = done.stderr.strip()
            if "No such image" in message or "No such object" in message:
                raise SandboxUnavailable(f"the image {self._image} is missing: run `grader sandbox build`")
            raise SandboxUnavailable(f"the Docker daemon is not usable: {message or 'no answer'}")
        return json.loads(done.stdout or "null") or {}

    def start(self, limits: Limits, *, device: str = "cpu") -> SandboxProcess:
        self.check()
        if not self._reaped:
            reap()
            self._reaped = True
        with contextlib.ExitStack() as undo:  # on any failure: the container goes, then the uid
            lease = self.uids.lease()
            undo.callback(lease.release)
            container = self._create(limits, device, lease.uid)
            undo.callback(_remove, container)
            popen = _attach(container)
            undo.pop_all()
        return SandboxProcess(
            popen,
            backend=self.name,
            cgroup=container_cgroup(container),
            nested=True,
            cleanup=lambda: _remove_soon(container),
            lease=lease,
        )

    def _create(self, limits: Limits, device: str, uid: int) -> str:
        argv = docker_argv(
            limits,
            self._image,
            image_layout(self._labels),
            name=f"grader-{os.getpid()}-{secrets.token_hex(6)}",
            owner=_owner(),
            seccomp_profile=_profile_path(),
            uid=uid,
            device=device,
        )
        created = _docker(argv[1:], check=False)
        if created.returncode != 0:
            raise SandboxError(f"docker create failed: {created.stderr.strip()}")
        return created.stdout.strip()


def _attach(container: str) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            ["docker", "start", "--attach", "--interactive", container],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise SandboxError(f"cannot start the container: {exc}") from exc


def container_cgroup(container: str) -> cgroups.CgroupSet | None:
    """The container's cgroup (created by Docker under our parent), read from outside."""
    kind, mounts = cgroups.discover()
    relative = Path(CGROUP_PARENT.lstrip("/")) / container
    if kind == "v2":
        return _Borrowed(cgroups.CgroupV2(path=mounts[""] / relative), container)
    if kind == "v1":
        return _Borrowed(
            cgroups.CgroupV1(
                memory=mounts["memory"] / relative,
                pids_dir=mounts["pids"] / relative,
                cpuacct=mounts["cpuacct"] / relative,
                cpu=mounts["cpu"] / relative,
            ),
            container,
        )
    return None


class _Borrowed(cgroups.CgroupSet):
    """A cgroup Docker owns: we read it and may kill its processes; Docker removes it."""

    def __init__(self, inner: cgroups.CgroupSet, container: str) -> None:
        self.inner, self.container = inner, container
        self.last_cpu_ns = 0

    @property
    def procs_files(self) -> list[str]:
        return self.inner.procs_files

    def cpu_ns(self) -> int:
        """The container's CPU time; once it has stopped and Docker removed its cgroup (a runner
        that exited mid-call, say), the last reading: a stopped container uses no more."""
        try:
            self.last_cpu_ns = self.inner.cpu_ns()
        except OSError:
            pass
        return self.last_cpu_ns

    def memory_bytes(self) -> int:
        try:
            return self.inner.memory_bytes()
        except OSError:  # stopped and removed: it holds no memory
            return 0

    def memory_peak_bytes(self) -> int:
        return self.inner.memory_peak_bytes()

    def reset_memory_peak(self) -> bool:
        return self.inner.reset_memory_peak()

    def oom_kills(self) -> int:
        try:
            return self.inner.oom_kills()
        except OSError:  # the container stopped and Docker removed its cgroup: ask Docker
            done = _docker(["inspect", "--format", "{{.State.OOMKilled}}", self.container], check=False)
            return int(done.stdout.strip() == "true")

    def pids(self) -> list[int]:
        try:
            return self.inner.pids()
        except OSError:
            return []

    def directories(self) -> list[Path]:
        return self.inner.directories()

    def remove(self, timeout: float = 5.0) -> None:
        self.kill_all()


def _docker(
    args: Sequence[str], *, check: bool = True, timeout: float = DOCKER_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SandboxUnavailable(f"docker {args[0]} did not answer within {timeout:g} s") from None
    except FileNotFoundError:
        raise SandboxUnavailable(
            "the docker command is missing (Debian: apt-get install docker.io)"
        ) from None
    if check and done.returncode != 0:
        raise SandboxError(f"docker {args[0]} failed: {done.stderr.strip()}")
    return done


def _remove(container: str) -> None:
    with contextlib.suppress(SandboxError, SandboxUnavailable):
        _docker(["rm", "--force", "--volumes", container], check=False, timeout=20)


def _remove_soon(container: str) -> None:
    """Remove a used container without making the verdict wait for it. The thread is not a
    daemon: the interpreter waits for it at exit, so no container outlives the command. (A
    killed process leaves its containers to `reap`.)"""
    threading.Thread(target=_remove, args=(container,), name=f"remove-{container[:12]}").start()


def reap(host: str | None = None) -> list[str]:
    """Remove containers of ours whose worker process is gone (it died before cleaning up)."""
    host = host or socket.gethostname()
    listed = _docker(
        [
            "ps",
            "--all",
            "--filter",
            f"label={LABEL}=1",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{OWNER_LABEL}"}}}}',
        ],
        check=False,
    )
    removed = []
    for line in listed.stdout.splitlines():
        container, _, owner = line.partition(" ")
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or cgroups.process_alive(int(pid)):
            continue
        _remove(container)
        removed.append(container)
    return removed


def host_image_tar(layout: Layout) -> bytes:
    """A root filesystem of mount points only: the directories and symlinks the layout names,
    the work dir, `/tmp` pointing into it, and the accounts the runner may look up."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        added: set[str] = set()

        def add_dir(path: str, mode: int = 0o755) -> None:
            if path in added:
                return
            added.add(path)
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        def add_file(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

        for directory in ("/etc", "/dev", "/proc", "/sys", "/opt", "/opt/grader", "/usr", "/usr/bin"):
            add_dir(directory)
        add_dir(WORK_DIR, 0o1777)
        for mount in layout.mounts:
            if mount.kind == "dir":
                add_dir(mount.target)
            elif mount.kind == "symlink" and mount.target not in added:
                added.add(mount.target)
                info = tarfile.TarInfo(mount.target.lstrip("/"))
                info.type, info.linkname = tarfile.SYMTYPE, mount.source
                tar.addfile(info)
        info = tarfile.TarInfo("tmp")
        info.type, info.linkname = tarfile.SYMTYPE, f"{WORK_DIR}/tmp"
        tar.addfile(info)
        add_file(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/work:/usr/sbin/nologin\n",
        )
        add_file("/etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buffer.getvalue()


def build_host_image(image: str = DEFAULT_IMAGE) -> str:
    """Build the `host` runtime image with `docker import` (no registry needed); returns its id."""
    layout = host_layout()
    changes = [
        "LABEL grader.runtime=host",
        f"LABEL grader.python={layout.python}",
        f"USER {SANDBOX_UID}:{SANDBOX_UID}",
        f"WORKDIR {WORK_DIR}",
    ]
    argv = ["import"]
    for change in changes:
        argv += ["--change", change]
    argv += ["-", image]
    try:
        done = subprocess.run(
            ["docker", *argv], input=host_image_tar(layout), capture_output=True, timeout=300, check=False
        )
    except FileNotFoundError:
        raise SandboxUnavailable(
            "the docker command is missing (Debian: apt-get install docker.io)"
        ) from None
    if done.returncode != 0:
        raise SandboxError(f"docker import failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode().strip()
