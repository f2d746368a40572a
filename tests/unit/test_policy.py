"""Sandbox policy as data: what the command lines say, checked without starting a sandbox."""

from __future__ import annotations

import pytest

from sandbox.policy import (
    CPU_PERIOD_US,
    SANDBOX_UID,
    Layout,
    Limits,
    Mount,
    bwrap_argv,
    cgroup_join_argv,
    cpu_quota_us,
    cuda_index,
    gpu_nodes,
    rlimit_argv,
    runner_env,
    setpriv_argv,
)

UID = 2_000_000_123
LAYOUT = Layout(
    mounts=(
        Mount("dir", "/usr"),
        Mount("ro-bind", "/usr/lib", "/usr/lib"),
        Mount("symlink", "/lib", "usr/lib"),
        Mount("mask", "/opt/grader/site/0/__editable__.pth"),
    ),
    python="/usr/bin/python3.11",
    site_dirs=("/opt/grader/site/0",),
)


def argv(uid: int = UID, **limits: float) -> list[str]:
    return bwrap_argv(Limits.from_mapping(limits), LAYOUT, seccomp_fd=9, uid=uid)


def pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_every_namespace_is_unshared_and_the_session_is_new() -> None:
    args = argv()
    for flag in (
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ):
        assert flag in args


def test_the_runtime_is_read_only_and_nothing_is_bound_writable() -> None:
    args = argv()
    assert "--bind" not in args and "--dev-bind" not in args
    assert pairs(args, "--ro-bind") == ["/usr/lib", "/dev/null"]
    assert "--seccomp" in args and pairs(args, "--seccomp") == ["9"]


def test_work_dir_is_a_sized_tmpfs() -> None:
    args = argv(disk_mb=16)
    i = args.index("--tmpfs")
    assert args[i + 1] == "/work" and args[i - 2 : i] == ["--size", str(16 * 1024 * 1024)]
    assert pairs(args, "--chdir") == ["/work"]


def test_the_runner_drops_to_the_uid_it_was_given_with_no_capabilities() -> None:
    args = argv()
    tail = args[args.index("--") + 1 :]
    assert tail[: len(setpriv_argv(UID))] == setpriv_argv(UID)
    assert f"--reuid={UID}" in tail and f"--regid={UID}" in tail and "--clear-groups" in tail
    assert "--no-new-privs" in tail and "--bounding-set=-all" in tail and "--inh-caps=-all" in tail
    assert str(SANDBOX_UID) not in " ".join(tail[: len(setpriv_argv(UID))])
    assert tail[-6:-1] == ["/usr/bin/python3.11", "-I", "-S", "-B", "-c"]


def test_each_runner_gets_the_uid_it_is_started_with() -> None:
    first, second = argv(uid=UID), argv(uid=UID + 1)
    assert first != second
    assert [a for a in first if a.startswith("--reuid=")] == [f"--reuid={UID}"]
    assert [a for a in second if a.startswith("--reuid=")] == [f"--reuid={UID + 1}"]


def test_environment_is_exactly_the_runner_env() -> None:
    args = argv()
    env = {args[i + 1]: args[i + 2] for i, a in enumerate(args) if a == "--setenv"}
    assert env == runner_env(Limits())
    assert env["OMP_NUM_THREADS"] == "1" and "PYTHONPATH" not in env


@pytest.mark.parametrize(
    ("by_cgroup", "present", "absent"),
    [
        (True, ["--cpu=180:181", "--nofile=256:256", "--core=0:0"], ["--data", "--nproc"]),
        (False, ["--data=2147483648:2147483648", "--nproc=64:64"], []),
    ],
)
def test_rlimits_cover_what_cgroups_do_not(by_cgroup: bool, present: list[str], absent: list[str]) -> None:
    args = rlimit_argv(Limits(), memory_by_cgroup=by_cgroup, pids_by_cgroup=by_cgroup)
    assert args[0] == "prlimit" and args[-1] == "--"
    for flag in present:
        assert flag in args
    for prefix in absent:
        assert not any(a.startswith(prefix) for a in args)


def test_cgroup_paths_are_arguments_not_script() -> None:
    args = cgroup_join_argv(["/sys/fs/cgroup/memory/grader/g1/cgroup.procs", "/x;rm -rf /"])
    assert args[:3] == ["/bin/sh", "-c", args[2]] and "/x;rm" not in args[2]
    assert args[3:] == ["sandbox-join", "2", "/sys/fs/cgroup/memory/grader/g1/cgroup.procs", "/x;rm -rf /"]


@pytest.mark.parametrize("field", ["wall_seconds", "memory_mb", "pids", "output_kb", "cpus"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits.from_mapping({field: 0})


def test_time_limits_are_cpu_time_with_a_wall_backstop_behind() -> None:
    limits = Limits.from_mapping({"call_seconds": 5, "cpu_seconds": 100})
    assert (limits.call_seconds, limits.cpu_seconds, limits.wall_seconds) == (5, 100, Limits().wall_seconds)
    with pytest.raises(ValueError, match="wall_seconds .* backstop behind cpu_seconds"):
        Limits.from_mapping({"cpu_seconds": 100, "wall_seconds": 50})


def test_an_exercise_that_limits_only_wall_time_gets_that_much_cpu_time() -> None:
    limits = Limits.from_mapping({"wall_seconds": 150})
    assert (limits.cpu_seconds, limits.wall_seconds) == (150, Limits().wall_seconds)
    assert Limits.from_mapping({"wall_seconds": 900}).wall_seconds == 900


def test_unknown_limits_are_named() -> None:
    with pytest.raises(ValueError, match="unknown limit.*gpu_count"):
        Limits.from_mapping({"gpu_count": 2})


def test_limits_merge_over_defaults() -> None:
    limits = Limits.from_mapping({"memory_mb": 512})
    assert limits.memory_mb == 512 and limits.pids == Limits().pids


def test_one_cpu_by_default_and_fractions_allowed() -> None:
    assert Limits().cpus == 1.0 and Limits().to_dict()["cpus"] == 1.0
    assert Limits.from_mapping({"cpus": 0.5}).cpus == 0.5
    assert Limits.from_mapping({"cpus": 2}).cpus == 2


@pytest.mark.parametrize(("cpus", "quota"), [(1.0, 100_000), (0.5, 50_000), (2, 200_000), (0.001, 1000)])
def test_the_cpu_quota_is_cpus_times_the_period(cpus: float, quota: int) -> None:
    assert CPU_PERIOD_US == 100_000
    assert cpu_quota_us(Limits(cpus=cpus)) == quota


@pytest.mark.parametrize(("device", "index"), [("cpu", None), ("cuda", 0), ("cuda:3", 3)])
def test_cuda_index(device: str, index: int | None) -> None:
    assert cuda_index(device) == index


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "mps", "cuda:-1"])
def test_unknown_devices_are_refused(device: str) -> None:
    with pytest.raises(ValueError, match="unknown device"):
        cuda_index(device)


def test_a_gpu_sandbox_gets_exactly_one_device() -> None:
    nodes = gpu_nodes("cuda:1", existing=lambda path: path != "/dev/nvidia-modeset")
    assert nodes == ("/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
    args = bwrap_argv(Limits(), LAYOUT, seccomp_fd=None, uid=UID, device="cuda:1", gpu_nodes=nodes)
    assert pairs(args, "--dev-bind") == list(nodes)
    assert args.index("--dev-bind") > args.index("--dev")  # after the fresh /dev, not hidden by it
    env = {args[i + 1]: args[i + 2] for i, a in enumerate(args) if a == "--setenv"}
    assert env["CUDA_VISIBLE_DEVICES"] == "1"


def test_a_cpu_sandbox_sees_no_gpu() -> None:
    assert gpu_nodes("cpu") == ()
    args = bwrap_argv(Limits(), LAYOUT, seccomp_fd=None, uid=UID)
    assert "--dev-bind" not in args
    assert runner_env(Limits())["CUDA_VISIBLE_DEVICES"] == ""


def test_triton_interprets_kernels_only_without_a_gpu() -> None:
    assert runner_env(Limits())["TRITON_INTERPRET"] == "1"
    assert "TRITON_INTERPRET" not in runner_env(Limits(), "cuda:1")
