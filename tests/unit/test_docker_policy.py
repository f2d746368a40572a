"""The Docker command line and seccomp profile, asserted without a daemon."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from sandbox.cgroups import CgroupV1
from sandbox.docker import _Borrowed, docker_argv, host_image_tar, image_layout, seccomp_profile
from sandbox.policy import DENIED_SYSCALLS, Layout, Limits, Mount, runner_env

LAYOUT = Layout(
    mounts=(
        Mount("dir", "/opt/grader"),
        Mount("ro-bind", "/opt/grader/site/0", "/venv/site-packages"),
        Mount("mask", "/opt/grader/site/0/__editable__.pth"),
        Mount("symlink", "/lib", "usr/lib"),
    ),
    python="/usr/bin/python3",
    site_dirs=("/opt/grader/site/0",),
)
LIMITS = Limits(memory_mb=512, pids=32, disk_mb=16, open_files=64, cpu_seconds=30)


UID = 2_000_000_042


def argv(device: str = "cpu", limits: Limits = LIMITS, uid: int = UID) -> list[str]:
    return docker_argv(
        limits,
        "img:tag",
        LAYOUT,
        name="grader-x",
        owner="host:42",
        seccomp_profile="/p.json",
        uid=uid,
        device=device,
    )


def pairs(command: list[str]) -> list[tuple[str, str]]:
    return list(zip(command, command[1:], strict=False))


def test_every_hardening_flag_is_present() -> None:
    command = argv()
    for flag, value in [
        ("--network", "none"),
        ("--ipc", "private"),
        ("--user", f"{UID}:{UID}"),
        ("--cap-drop", "ALL"),
        ("--security-opt", "no-new-privileges"),
        ("--security-opt", "seccomp=/p.json"),
        ("--pids-limit", "32"),
        ("--memory", "512m"),
        ("--memory-swap", "512m"),  # no swap beyond the memory limit
        ("--cpus", "1"),
        ("--ulimit", "core=0"),
        ("--ulimit", "nofile=64"),
        ("--ulimit", "cpu=30"),
        ("--label", "grader.sandbox=1"),
        ("--label", "grader.owner=host:42"),
    ]:
        assert (flag, value) in pairs(command), (flag, value)
    assert "--read-only" in command and "--privileged" not in command
    assert ("--tmpfs", f"/work:rw,size={16 * 1024 * 1024},mode=1777,nosuid,nodev") in pairs(command)


def test_each_container_runs_as_the_uid_it_is_given() -> None:
    users = [value for flag, value in pairs(argv(uid=UID + 7)) if flag == "--user"]
    assert users == [f"{UID + 7}:{UID + 7}"]


@pytest.mark.parametrize(("cpus", "flag"), [(1.0, "1"), (0.5, "0.5"), (2, "2")])
def test_the_cpu_limit_is_the_limits_cpus(cpus: float, flag: str) -> None:
    values = [value for name, value in pairs(argv(limits=Limits(cpus=cpus))) if name == "--cpus"]
    assert values == [flag]


def test_binds_are_read_only_and_masks_cover_files() -> None:
    mounts = [value for flag, value in pairs(argv()) if flag == "--mount"]
    assert mounts == [
        "type=bind,source=/venv/site-packages,target=/opt/grader/site/0,readonly",
        "type=bind,source=/dev/null,target=/opt/grader/site/0/__editable__.pth,readonly",
    ]


def test_environment_is_exactly_the_runner_env() -> None:
    env = dict(value.split("=", 1) for flag, value in pairs(argv()) if flag == "--env")
    assert env == runner_env(LIMITS)
    assert env["CUDA_VISIBLE_DEVICES"] == ""


def test_a_gpu_exercise_gets_exactly_one_device() -> None:
    command = argv("cuda:3")
    assert ("--gpus", "device=3") in pairs(command)
    assert [value for flag, value in pairs(argv()) if flag == "--gpus"] == []


def test_the_command_runs_the_runner_in_the_image() -> None:
    command = argv()
    entry = command.index("--entrypoint")
    assert command[entry + 1 : entry + 3] == ["/usr/bin/python3", "img:tag"]
    assert command[entry + 3 : entry + 6] == ["-I", "-S", "-B"]
    assert "from grader.runner.server import main" in command[-1]


def test_the_seccomp_profile_denies_what_bwrap_denies() -> None:
    profile = seccomp_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    rules = profile["syscalls"]
    assert isinstance(rules, list)
    denied = set(rules[0]["names"])
    assert denied == set(DENIED_SYSCALLS) and {"unshare", "mount", "ptrace", "setns"} <= denied
    clones = [rule for rule in rules if rule["names"] == ["clone"]]
    assert len(clones) == 7 and all(rule["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" for rule in clones)


@pytest.mark.parametrize(
    ("labels", "python", "site"),
    [
        ({"grader.runtime": "image", "grader.python": "/usr/local/bin/python", "grader.site": "/a:/b"},
         "/usr/local/bin/python", ("/a", "/b")),
        ({}, "python3", ()),
    ],
)  # fmt: skip
def test_production_images_bring_their_own_runtime(
    labels: dict[str, str], python: str, site: tuple[str, ...]
) -> None:
    layout = image_layout(labels)
    assert (layout.mounts, layout.python, layout.site_dirs) == ((), python, site)
    assert layout.bootstrap()[-1].startswith("import os; os.environ.pop('HOSTNAME', None); ")


def test_the_host_image_holds_mount_points_only() -> None:
    with tarfile.open(fileobj=io.BytesIO(host_image_tar(LAYOUT))) as tar:
        names = [member.name for member in tar.getmembers()]
        members = {member.name: member for member in tar.getmembers()}
    assert len(names) == len(set(names))  # Docker refuses an archive with duplicate paths
    assert members["opt/grader"].isdir() and members["work"].mode == 0o1777
    assert members["lib"].issym() and members["lib"].linkname == "usr/lib"
    assert members["tmp"].issym() and members["tmp"].linkname == "/work/tmp"
    regular = sorted(name for name, member in members.items() if member.isfile())
    assert regular == ["etc/group", "etc/passwd"]  # no file of the host, no code of ours


def test_a_stopped_containers_cgroup_keeps_its_last_cpu_reading(tmp_path: Path) -> None:
    # Docker removes a container's cgroup as soon as it stops: a runner that exits mid-call must
    # read as a death, never as a harness error about a missing file
    group = tmp_path / "container"
    group.mkdir()
    (group / "cpuacct.usage").write_text("123456789\n")
    (group / "memory.usage_in_bytes").write_text("4096\n")
    borrowed = _Borrowed(CgroupV1(memory=group, pids_dir=group, cpuacct=group, cpu=group), "c0ffee")
    assert (borrowed.cpu_ns(), borrowed.memory_bytes()) == (123456789, 4096)
    shutil.rmtree(group)
    assert (borrowed.cpu_ns(), borrowed.memory_bytes(), borrowed.pids()) == (123456789, 0, [])
