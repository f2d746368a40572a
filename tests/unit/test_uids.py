"""The sandbox uid allocator, for real: lock files, other processes, the host's /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox import SandboxError, SandboxUnavailable
from sandbox.uids import UidPool, uids_in_use

ROOT = Path(__file__).resolve().parents[2]
# a block of its own, far from the default one, so that sandboxes running meanwhile never meet it
FIRST = 2_100_000_000


def pool(tmp_path: Path, count: int, first: int = FIRST) -> UidPool:
    return UidPool(first, count, tmp_path / "locks")


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """A separate process (another worker, say) running `code` with this checkout importable."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_the_block_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GRADER_SANDBOX_UIDS", raising=False)
    monkeypatch.delenv("GRADER_SANDBOX_UID_DIR", raising=False)
    default = UidPool.from_env()
    assert (default.first, default.count, default.directory) == (
        2_000_000_000,
        4096,
        Path("/run/grader-uids"),
    )
    assert 2_000_000_000 in default and 2_000_004_095 in default and 2_000_004_096 not in default
    monkeypatch.setenv("GRADER_SANDBOX_UIDS", "300000:10")
    monkeypatch.setenv("GRADER_SANDBOX_UID_DIR", str(tmp_path))
    assert UidPool.from_env() == UidPool(300000, 10, tmp_path)


@pytest.mark.parametrize("spec", ["300000", "300000-300010", "a:b", "0:10", "1000:10", "65534:1", "300000:0"])
def test_a_bad_block_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv("GRADER_SANDBOX_UIDS", spec)
    with pytest.raises(SandboxUnavailable, match="GRADER_SANDBOX_UIDS"):
        UidPool.from_env()


def test_leases_are_distinct_and_come_back_once_released(tmp_path: Path) -> None:
    uids = pool(tmp_path, 2)
    first, second = uids.lease(), uids.lease()
    assert {first.uid, second.uid} == {FIRST, FIRST + 1}
    with pytest.raises(SandboxError, match="no free sandbox uid"):
        uids.lease()
    first.release()
    again = uids.lease()
    assert again.uid == first.uid
    again.release()
    second.release()
    second.release()  # twice is harmless


def test_a_uid_a_process_still_runs_as_is_not_handed_out(tmp_path: Path) -> None:
    uids = pool(tmp_path, 1)
    stray = subprocess.Popen(
        ["setpriv", f"--reuid={FIRST}", f"--regid={FIRST}", "--clear-groups", "--", "sleep", "60"]
    )
    try:
        deadline = time.monotonic() + 10
        while FIRST not in uids_in_use() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert FIRST in uids_in_use()
        with pytest.raises(SandboxError, match="no free sandbox uid"):
            uids.lease()  # its lock is free (no worker holds it), but a process is left
    finally:
        stray.kill()
        stray.wait()
    assert FIRST not in uids_in_use()
    uids.lease().release()


HOLDER = """
import sys
from pathlib import Path
from sandbox.uids import UidPool
pool = UidPool(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
gate = Path(sys.argv[4])
print("ready", flush=True)
while not gate.exists():
    pass
leases = [pool.lease() for _ in range(int(sys.argv[5]))]
print(" ".join(str(lease.uid) for lease in leases), flush=True)
sys.stdin.readline()
"""


def test_a_dead_holder_gives_its_uids_back(tmp_path: Path) -> None:
    uids = pool(tmp_path, 1)
    gate = tmp_path / "go"
    gate.touch()
    holder = python(HOLDER, str(FIRST), "1", str(uids.directory), str(gate), "1")
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"
    assert holder.stdout.readline().split() == [str(FIRST)]
    with pytest.raises(SandboxError, match="no free sandbox uid"):
        uids.lease()
    holder.kill()  # SIGKILL: no code of ours runs; the kernel drops its lock
    holder.communicate()
    uids.lease().release()


def test_two_processes_allocating_at_once_never_get_the_same_uid(tmp_path: Path) -> None:
    uids, each = pool(tmp_path, 40), 20
    gate = tmp_path / "go"
    holders = [python(HOLDER, str(FIRST), "40", str(uids.directory), str(gate), str(each)) for _ in range(2)]
    try:
        for holder in holders:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        gate.touch()  # both start allocating at the same moment
        got = [[int(uid) for uid in holder.stdout.readline().split()] for holder in holders if holder.stdout]
        assert [len(uids_of_one) for uids_of_one in got] == [each, each], json.dumps(got)
        assert set(got[0]).isdisjoint(got[1])
        assert set(got[0]) | set(got[1]) == set(range(FIRST, FIRST + 40))
        with pytest.raises(SandboxError, match="no free sandbox uid"):
            uids.lease()  # while they hold them: every one is taken
    finally:
        for holder in holders:
            holder.communicate("\n", timeout=30)
    uids.lease().release()


def test_a_lock_directory_others_could_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "locks"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(SandboxUnavailable, match="nobody else can write"):
        UidPool(FIRST, 1, shared).lease()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    with pytest.raises(SandboxUnavailable, match="nobody else can write"):
        UidPool(FIRST, 1, link).check()
