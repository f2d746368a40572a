"""cgroup discovery and the files each hierarchy is driven through, on fake trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox import cgroups
from sandbox.cgroups import CgroupV1, CgroupV2
from sandbox.policy import Limits

V1_MOUNTS = """\
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""


def write_mountinfo(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return str(path)


def test_v1_is_used_when_v2_has_no_controllers(tmp_path: Path) -> None:
    kind, mounts = cgroups.discover(write_mountinfo(tmp_path, V1_MOUNTS))
    assert kind == "v1"
    assert mounts == {c: Path(f"/sys/fs/cgroup/{c}") for c in ("memory", "pids", "cpuacct", "cpu")}


def test_v1_without_the_cpu_controller_is_not_used(tmp_path: Path) -> None:
    without_cpu = "".join(line + "\n" for line in V1_MOUNTS.splitlines() if not line.endswith("rw,cpu"))
    assert cgroups.discover(write_mountinfo(tmp_path, without_cpu)) == ("", {})


def test_v2_is_preferred_when_it_has_the_controllers(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    info = f"35 30 0:31 / {root} rw - cgroup2 cgroup2 rw\n"
    assert cgroups.discover(write_mountinfo(tmp_path, info)) == ("v2", {"": root})


def test_no_cgroups_at_all(tmp_path: Path) -> None:
    assert cgroups.discover(write_mountinfo(tmp_path, "1 0 0:1 / / rw - ext4 /dev/vda rw\n")) == ("", {})


def fake_v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "cg2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    grader = root / cgroups.PARENT
    grader.mkdir()
    (grader / "cgroup.subtree_control").write_text("memory")
    return root


def test_v2_create_writes_limits_and_reads_clocks(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path)
    group = CgroupV2.create(root, "g1-0-x", Limits(memory_mb=256, pids=32))
    assert (group.path / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (group.path / "memory.swap.max").read_text() == "0"
    assert (group.path / "pids.max").read_text() == "32"
    assert (group.path / "cpu.max").read_text() == "100000 100000"  # one CPU by default
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (root / cgroups.PARENT / "cgroup.subtree_control").read_text() == "+cpu +pids"
    (group.path / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (group.path / "memory.current").write_text("4096\n")
    (group.path / "memory.peak").write_text("8192\n")
    assert group.cpu_ns() == 1_500_000
    assert group.oom_kills() == 1
    assert (group.memory_bytes(), group.memory_peak_bytes()) == (4096, 8192)
    assert group.procs_files == [str(group.path / "cgroup.procs")]


def test_v2_caps_the_cpu_at_the_limits_cpus(tmp_path: Path) -> None:
    group = CgroupV2.create(fake_v2_root(tmp_path), "g1-0-x", Limits(cpus=0.5))
    assert (group.path / "cpu.max").read_text() == "50000 100000"


@pytest.mark.parametrize("shared", [False, True], ids=["cpu-apart", "cpu-with-cpuacct"])
def test_v1_create_writes_limits_in_each_hierarchy_once(tmp_path: Path, shared: bool) -> None:
    mounts = {c: tmp_path / c for c in ("memory", "pids", "cpuacct", "cpu")}
    if shared:
        mounts["cpu"] = mounts["cpuacct"]  # mounted as one hierarchy, "cpu,cpuacct"
    for mount in mounts.values():
        mount.mkdir(exist_ok=True)
    group = CgroupV1.create(mounts, "g1-0-x", Limits(memory_mb=64, pids=8, cpus=1.5))
    assert (group.memory / "memory.limit_in_bytes").read_text() == str(64 * 1024 * 1024)
    assert (group.pids_dir / "pids.max").read_text() == "8"
    assert (group.cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (group.cpu / "cpu.cfs_quota_us").read_text() == "150000"
    assert group.cpu == mounts["cpu"] / cgroups.PARENT / "g1-0-x"
    assert len(group.procs_files) == (3 if shared else 4)


def test_v1_reads_its_own_files(tmp_path: Path) -> None:
    dirs = {c: tmp_path / c for c in ("memory", "pids", "cpuacct", "cpu")}
    for d in dirs.values():
        d.mkdir()
    group = CgroupV1(memory=dirs["memory"], pids_dir=dirs["pids"], cpuacct=dirs["cpuacct"], cpu=dirs["cpu"])
    (dirs["cpuacct"] / "cpuacct.usage").write_text("123456789\n")
    (dirs["memory"] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (dirs["memory"] / "memory.max_usage_in_bytes").write_text("1048576\n")
    assert group.cpu_ns() == 123456789
    assert group.oom_kills() == 2
    assert group.memory_peak_bytes() == 1048576
    assert group.reset_memory_peak() and (dirs["memory"] / "memory.max_usage_in_bytes").read_text() == "0"
    assert len(group.procs_files) == 4


def test_reap_removes_groups_of_dead_owners_only(tmp_path: Path) -> None:
    parent = tmp_path / "grader"
    parent.mkdir()
    dead, alive, foreign = parent / "g999999999-0-aa", parent / f"g{os.getpid()}-0-bb", parent / "other"
    for d in (dead, alive, foreign):
        d.mkdir()
    cgroups.reap(parent)
    assert not dead.exists() and alive.exists() and foreign.exists()


def test_this_host_can_create_real_cgroups() -> None:
    group = cgroups.create(Limits(memory_mb=64, pids=8, cpus=0.5))
    try:
        assert group.cpu_ns() >= 0 and group.pids() == []
        assert quota(group) == "50000 100000"  # as the kernel reads it back
    finally:
        group.remove()
    assert not any(d.exists() for d in group.directories())


def quota(group: cgroups.CgroupSet) -> str:
    if isinstance(group, CgroupV2):
        return (group.path / "cpu.max").read_text().strip()
    assert isinstance(group, CgroupV1)
    read = lambda name: (group.cpu / name).read_text().strip()  # noqa: E731
    return f"{read('cpu.cfs_quota_us')} {read('cpu.cfs_period_us')}"
