"""The `grader` command as a user runs it: output, files and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import junitparser
import pytest

pytestmark = pytest.mark.sandbox
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "catalog"
GRADER = str(Path(sys.executable).with_name("grader"))


def grader(*args: str, catalog: Path = FIXTURES) -> subprocess.CompletedProcess[str]:
    command = [
        GRADER,
        "--exercises-dir",
        str(catalog / "exercises"),
        "--solutions-dir",
        str(catalog / "solutions"),
    ]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, check=False)


def solution(name: str = "solution.py") -> str:
    return str(FIXTURES / "solutions" / "guarded-sum" / name)


def test_grade_json_prints_only_the_verdict() -> None:
    done = grader("grade", "guarded-sum", solution(), "--json")
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["status"] == "passed" and verdict["performance"][0]["name"] == "speed"


def test_a_failing_submission_still_exits_zero_and_writes_reports(tmp_path: Path) -> None:
    junit, gradescope = tmp_path / "junit.xml", tmp_path / "gs" / "results.json"
    done = grader(
        "grade",
        "guarded-sum",
        solution("wrong/transpose.py"),
        "--junit",
        str(junit),
        "--gradescope",
        str(gradescope),
    )
    assert done.returncode == 0, done.stderr
    assert "Failed" in done.stdout and "test_random" in done.stdout
    suite = next(iter(junitparser.JUnitXml.fromfile(str(junit))))
    assert suite.failures >= 1
    assert json.loads(gradescope.read_text())["extra_data"]["status"] == "failed"


def test_public_tests_only() -> None:
    done = grader(
        "test", "guarded-sum", str(FIXTURES / "exercises" / "guarded-sum" / "skeleton.py"), "--json"
    )
    verdict = json.loads(done.stdout)
    assert done.returncode == 0 and [t["name"] for t in verdict["tests"]] == ["test_small"]
    assert verdict["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["grade", "guarded-summ", "x.py"], 2, "Did you mean guarded-sum"),
        (["grade", "guarded-sum", "/no/such/file.py"], 2, "no such file: /no/such/file.py"),
        (["grade", "guarded-sum", "/tmp"], 2, "is not a file"),
        (["grade", "guarded-sum", "x.py", "--sandbox", "chroot"], 2, "unknown sandbox 'chroot'"),
        (["exercise", "validate"], 2, "name one EXERCISE or pass --all"),
        (["grade"], 2, "Missing argument"),
        (["worker", "--queue", "nope"], 2, "unknown queue 'nope'; choose one of cpu, gpu, lti"),
    ],
)
def test_bad_usage_is_a_clear_message_not_a_traceback(args: list[str], code: int, words: str) -> None:
    args = [solution() if a == "x.py" else a for a in args]
    done = grader(*args)
    assert done.returncode == code
    assert words in done.stderr and "Traceback" not in done.stderr


def test_huge_and_binary_files_are_rejected_without_reading_them_whole(tmp_path: Path) -> None:
    huge = tmp_path / "huge.py"
    with huge.open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    binary = tmp_path / "binary.py"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    for path, words in ((huge, "huge.py is 50.0 MB"), (binary, "not valid UTF-8")):
        done = grader("grade", "guarded-sum", str(path), "--json")
        verdict = json.loads(done.stdout)
        assert done.returncode == 0 and verdict["status"] == "rejected" and words in verdict["message"]


def test_list_shows_the_curriculum() -> None:
    done = grader("exercise", "list", "--json")
    data = json.loads(done.stdout)
    assert [track["track"]["id"] for track in data] == ["basics"]
    assert {c["id"] for c in data[0]["concepts"]} == {"toy-sum", "guarded-sum"}
    assert "Row sums" in grader("exercise", "list").stdout


def test_an_invalid_catalog_lists_its_problems(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    shutil.copytree(FIXTURES, root)
    (root / "exercises" / "toy-sum" / "skeleton.py").unlink()
    done = grader("exercise", "list", catalog=root)
    assert done.returncode == 1 and "skeleton.py: missing" in done.stderr and "Traceback" not in done.stderr


def test_sandbox_check() -> None:
    done = grader("sandbox", "check")
    assert done.returncode == 0 and "ok   bwrap" in done.stdout


def test_one_broken_exercise_does_not_stop_work_on_another(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    shutil.copytree(FIXTURES, root)
    (root / "exercises" / "toy-sum" / "README.md").unlink()
    done = grader("test", "guarded-sum", solution(), "--json", catalog=root)
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "passed"
    assert "left out, with problems: toy-sum" in done.stderr
    done = grader("test", "toy-sum", solution(), catalog=root)
    assert (
        done.returncode == 1
        and "exercise 'toy-sum' is invalid" in done.stderr
        and "README.md: missing" in done.stderr
    )


def test_an_unknown_device_is_bad_usage() -> None:
    done = grader("grade", "guarded-sum", solution(), "--device", "gpu0")
    assert done.returncode == 2 and "unknown device 'gpu0'" in done.stderr


def said(done: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, with a wrapped line joined again (rich wraps at the width)."""
    return " ".join(done.stdout.split())


def test_validation_reports_that_hold_are_kept_and_failures_are_not(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = grader("exercise", "validate", "guarded-sum", "--cache", str(cache))
    assert first.returncode == 0 and "(kept report)" not in said(first), first.stdout
    assert "all 1 exercise(s) valid" in said(first)
    # while it works, stderr says which check runs, k of n (reference, skeleton, one wrong variant)
    begun = [line for line in first.stderr.splitlines() if line.startswith("checking ")]
    assert begun == [
        "checking reference (1 of 3)",
        "checking skeleton (2 of 3)",
        "checking wrong/transpose (3 of 3)",
    ]
    again = grader("exercise", "validate", "guarded-sum", "--cache", str(cache))
    assert again.returncode == 0 and said(again).count("(kept report)") == said(first).count("ok guarded-sum")
    more_seeds = grader("exercise", "validate", "guarded-sum", "--cache", str(cache), "--seeds", "2")
    assert "(kept report)" not in said(more_seeds)  # a report on fewer seeds does not cover more
    assert "reference (seed 1)" in said(more_seeds)
    root = tmp_path / "catalog"
    shutil.copytree(FIXTURES, root)
    lying = root / "solutions" / "guarded-sum" / "wrong" / "lying.py"
    lying.write_text("# expect: failed\n# why: claims to be wrong\n" + Path(solution()).read_text())
    kept = sorted(cache.iterdir())
    done = grader("exercise", "validate", "guarded-sum", "--cache", str(cache), catalog=root)
    assert done.returncode == 1 and "(kept report)" not in said(done)  # a new version: validated afresh
    assert "FAIL guarded-sum: wrong/lying expected failed, got passed" in said(done)
    assert "1 validation check(s) did not hold" in done.stderr
    assert sorted(cache.iterdir()) == kept  # and a report that does not hold is never kept


def test_validate_all_runs_exercises_side_by_side(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    shutil.copytree(FIXTURES, root)
    for slow in ("loop.py", "materialize.py"):  # the slowest variants; the others are enough here
        (root / "solutions" / "toy-sum" / "wrong" / slow).unlink()
    done = grader("exercise", "validate", "--all", "--jobs", "2", catalog=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 at a time" in done.stderr and "all 2 exercise(s) valid" in said(done)
    # each exercise's checks, k of n, as they begin in the processes that validate them
    assert "guarded-sum: checking reference (1 of 3)" in done.stderr
    assert "toy-sum: checking wrong/columns (3 of 3)" in done.stderr
    for subject in ("guarded-sum: reference", "toy-sum: reference", "toy-sum: wrong/columns"):
        assert f"ok {subject}" in said(done)
    (root / "solutions" / "toy-sum" / "wrong" / "columns.py").write_text(
        "# expect: failed\n# why: claims to be wrong\n"
        + (root / "solutions" / "toy-sum" / "solution.py").read_text()
    )
    done = grader("exercise", "validate", "--all", "--jobs", "2", catalog=root)
    assert done.returncode == 1 and "FAIL toy-sum: wrong/columns expected failed, got passed" in said(done)
