"""Notebooks end to end, with real notebooks and the real sandbox: an instructor's source notebook
imported, released, completed by a student and graded; tampering and malformed notebooks; the
released test cells in a real Jupyter kernel; `grader ci` over a folder; the documented GitHub
Actions workflow."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import junitparser
import nbformat
import pytest
import yaml

from grader.catalog import Catalog, load_catalog
from grader.engine import grade
from grader.notebooks.importer import import_notebook
from grader.notebooks.release import notebook_bytes, release_notebook
from grader.verdict import Status
from sandbox import Sandbox

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "fixtures" / "notebooks" / "softmax-temperature.ipynb"
GRADER = str(Path(sys.executable).with_name("grader"))
WORKFLOW = ROOT / "examples" / "github-actions" / "grade-notebooks.yml"

CORRECT = {
    "softmax": (
        "def softmax(logits, temperature=1.0):\n"
        "    top = max(logits)\n"
        "    exps = [math.exp((z - top) / temperature) for z in logits]\n"
        "    return [e / sum(exps) for e in exps]\n"
    ),
    "argmax": "def argmax(logits):\n    return max(range(len(logits)), key=lambda i: (logits[i], -i))\n",
}
# right on every visible check, wrong on the hidden ones: overflows for large logits, last index on ties
VISIBLE_ONLY = {
    "softmax": (
        "def softmax(logits, temperature=1.0):\n"
        "    exps = [math.exp(z / temperature) for z in logits]\n"
        "    return [e / sum(exps) for e in exps]\n"
    ),
    "argmax": (
        "def argmax(logits):\n    best = max(logits)\n    return len(logits) - 1 - logits[::-1].index(best)\n"
    ),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course folder: the bundled tracks and the exercise imported from the source notebook."""
    root = tmp_path_factory.mktemp("course")
    (root / "exercises").mkdir()
    (root / "solutions").mkdir()
    shutil.copy(ROOT / "exercises" / "tracks.toml", root / "exercises" / "tracks.toml")
    import_notebook(SOURCE, root / "exercises", root / "solutions")
    return root


@pytest.fixture(scope="module")
def catalog(course: Path) -> Catalog:
    return load_catalog(course / "exercises", course / "solutions")


def released(catalog: Catalog) -> Any:
    return release_notebook(catalog.get("softmax-temperature"))


def completed(notebook: Any, answers: dict[str, str]) -> Any:
    """The student's work: each solution cell of the released notebook replaced by an answer."""
    done = copy.deepcopy(notebook)
    for cell in done.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    return done


def as_bytes(notebook: Any) -> bytes:
    """The notebook's file, as saved (without nbformat's checks: a student's file may break them)."""
    return json.dumps(notebook, indent=1).encode()


def grader(course: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [
        GRADER,
        "--exercises-dir",
        str(course / "exercises"),
        "--solutions-dir",
        str(course / "solutions"),
    ]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=600, check=False, cwd=cwd
    )


def test_source_to_release_to_a_graded_pass(catalog: Catalog, bwrap: Sandbox) -> None:
    exercise = catalog.get("softmax-temperature")
    notebook = completed(released(catalog), CORRECT)
    verdict = grade(exercise, as_bytes(notebook), bwrap, filename="homework.ipynb")
    assert verdict.status is Status.PASSED, verdict.message or verdict.failing_tests()
    assert verdict.score == verdict.max_score == 6  # the source notebook's points: 2 + 3 + 1
    assert verdict.notebook is not None and verdict.notebook.mode == "nbgrader"
    assert [c.grade_id for c in verdict.notebook.cells] == ["imports", "softmax", "argmax"]


def test_a_wrong_solution_fails_on_the_hidden_tests_of_the_source(catalog: Catalog, bwrap: Sandbox) -> None:
    exercise = catalog.get("softmax-temperature")
    verdict = grade(
        exercise, as_bytes(completed(released(catalog), VISIBLE_ONLY)), bwrap, filename="hw.ipynb"
    )
    assert verdict.status is Status.FAILED
    failing = {t.name: t for t in verdict.failing_tests()}
    assert set(failing) == {"test_softmax_temperature_hidden", "test_argmax_test_hidden"}
    assert all(t.visibility == "hidden" for t in failing.values())
    assert "did not hold" in failing["test_argmax_test_hidden"].message
    assert "[2.0, 5.0, 5.0]" not in failing["test_argmax_test_hidden"].message  # hidden inputs stay hidden
    skeleton = grade(exercise, as_bytes(released(catalog)), bwrap, filename="hw.ipynb")
    assert skeleton.status is Status.FAILED and skeleton.score == 0


def test_tampered_test_cells_change_nothing(catalog: Catalog, bwrap: Sandbox) -> None:
    exercise = catalog.get("softmax-temperature")
    wrong = completed(released(catalog), VISIBLE_ONLY)
    tests = [c for c in wrong.cells if c.metadata.get("nbgrader", {}).get("grade")]
    tests[0].source = "assert True  # all good here"
    wrong.cells.remove(tests[1])
    wrong.cells.append(copy.deepcopy(tests[0]))  # a duplicated cell, with its id repeated
    wrong = nbformat.from_dict(json.loads(json.dumps(wrong)))
    wrong.cells.append(nbformat.v4.new_code_cell("import sys; sys.exit(0)"))  # scratch: never graded
    verdict = grade(exercise, as_bytes(wrong), bwrap, filename="hw.ipynb")
    assert verdict.status is Status.FAILED
    assert {t.name for t in verdict.failing_tests()} == {
        "test_softmax_temperature_hidden",
        "test_argmax_test_hidden",
    }
    right = completed(released(catalog), CORRECT)
    for cell in right.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "raise SystemExit('tampered')"
    assert grade(exercise, as_bytes(right), bwrap, filename="hw.ipynb").status is Status.PASSED


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"cells": [', "not valid JSON"),
        (b'{"cells": [], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}', "nbformat version 3"),
        ("é".encode("latin-1") + b"{}", "not UTF-8 text"),
        (None, "has no solution cells"),
        (b"unparsable", "Syntax error in hw.ipynb, cell"),
    ],
    ids=["invalid-json", "nbformat-3", "non-utf8", "no-solution-cells", "unparsable-cell"],
)
def test_malformed_notebooks_get_a_rejected_verdict(
    catalog: Catalog, bwrap: Sandbox, data: bytes | None, expected: str
) -> None:
    exercise = catalog.get("softmax-temperature")
    if data is None:
        empty = released(catalog)
        empty.cells = [c for c in empty.cells if not c.metadata.get("nbgrader", {}).get("solution")]
        data = as_bytes(empty)
    elif data == b"unparsable":
        data = as_bytes(
            completed(released(catalog), {**CORRECT, "argmax": "def argmax(logits:\n    return 0\n"})
        )
    verdict = grade(exercise, data, bwrap, filename="hw.ipynb")
    assert verdict.status is Status.REJECTED
    assert expected in verdict.message and verdict.summary.startswith("not graded:")


def test_a_500_mb_notebook_is_rejected_without_being_read(course: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.ipynb"
    with huge.open("wb") as f:
        f.truncate(500 * 1024 * 1024)  # sparse: costs no disk
    done = grader(course, "notebook", "grade", "softmax-temperature", str(huge), "--json")
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert (
        verdict["status"] == "rejected" and "500.0 MB; notebooks are limited to 8.0 MB" in verdict["message"]
    )


def test_notebook_grade_cli_writes_feedback_and_records_the_gradebook(
    course: Path, catalog: Catalog, tmp_path: Path
) -> None:
    from nbgrader.api import Gradebook

    work = tmp_path / "hw.ipynb"
    work.write_bytes(as_bytes(completed(released(catalog), VISIBLE_ONLY)))
    db = tmp_path / "gradebook.db"
    feedback = tmp_path / "feedback.html"
    done = grader(
        course, "notebook", "grade", "softmax-temperature", str(work), "--json",
        "--feedback", str(feedback), "--gradebook", f"sqlite:///{db}", "--student", "ada",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "failed"
    page = feedback.read_text()
    assert "Grade: Failed" in page and "test_argmax_test_hidden" in page.replace("\\_", "_")
    with Gradebook(f"sqlite:///{db}") as gb:
        submission = gb.find_submission("softmax-temperature", "ada")
        assert (submission.score, submission.max_score) == (2.0, 6.0)
    as_notebook = tmp_path / "feedback.ipynb"
    grader(course, "notebook", "grade", "softmax-temperature", str(work), "--feedback", str(as_notebook))
    feedback_nb = nbformat.read(as_notebook, as_version=4)
    nbformat.validate(feedback_nb)
    assert feedback_nb.cells[0].source.startswith("# Grade: Failed")


def test_release_cli_writes_a_notebook_and_keeps_a_students_work(course: Path, tmp_path: Path) -> None:
    done = grader(course, "notebook", "release", "softmax-temperature", "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr
    path = tmp_path / "softmax-temperature.ipynb"
    nbformat.validate(nbformat.read(path, as_version=4))
    again = grader(course, "notebook", "release", "softmax-temperature", "--output", str(path))
    assert again.returncode == 2 and "--force" in again.stderr
    unknown = grader(course, "notebook", "release", "no-such-exercise")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


def test_released_cells_run_in_a_real_kernel() -> None:
    """The public test cells pass in Jupyter with the reference solution, and fail on the skeleton."""
    from nbclient import NotebookClient

    from grader.notebooks.release import split_module

    exercise = load_catalog(ROOT / "exercises", ROOT / "solutions").get("grpo-advantage")
    notebook = release_notebook(exercise)
    answers = {
        c.name: c.code for c in split_module((exercise.solution_dir / "solution.py").read_text(), "imports")
    }
    for outcome, work in (("passed", completed(notebook, answers)), ("failed", notebook)):
        NotebookClient(work, timeout=300, kernel_name="python3", allow_errors=True).execute()
        errors = [
            c.metadata["nbgrader"]["grade_id"]
            for c in work.cells
            if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.outputs)
        ]
        tests = [
            c.metadata["nbgrader"]["grade_id"]
            for c in work.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        ]
        if outcome == "passed":
            assert errors == [], errors
        else:
            assert set(errors) == set(tests)


def write_course_repo(root: Path, catalog: Catalog) -> Path:
    """A student repository of mixed notebooks and files, some broken."""
    work = root / "work"
    (work / "softmax-temperature").mkdir(parents=True)
    (work / "notebooks").mkdir()
    (work / "notebooks" / "good.ipynb").write_bytes(as_bytes(completed(released(catalog), CORRECT)))
    (work / "notebooks" / "wrong.ipynb").write_bytes(as_bytes(completed(released(catalog), VISIBLE_ONLY)))
    (work / "notebooks" / "broken.ipynb").write_text('{"cells": [')
    (work / "notebooks" / ".ipynb_checkpoints").mkdir()
    (work / "notebooks" / ".ipynb_checkpoints" / "good-checkpoint.ipynb").write_text("{")
    module = "import math\n\n" + CORRECT["softmax"] + "\n\n" + CORRECT["argmax"]
    (work / "softmax-temperature" / "mine.py").write_text(module)  # the folder names the exercise
    (work / "headed.py").write_text("# grader: exercise=softmax-temperature\n" + module)
    (work / "notes.py").write_text("print('not for any exercise')\n")
    return work


def test_ci_over_a_folder_of_mixed_notebooks_and_files(
    course: Path, catalog: Catalog, tmp_path: Path
) -> None:
    work = write_course_repo(tmp_path, catalog)
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    done = grader(course, "ci", str(work), "--junit", str(junit), "--summary", str(summary), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    suites = {suite.name: suite for suite in junitparser.JUnitXml.fromfile(str(junit))}
    assert set(suites) == {
        "work/headed.py",
        "work/notebooks/broken.ipynb",
        "work/notebooks/good.ipynb",
        "work/notebooks/wrong.ipynb",
        "work/notes.py",
        "work/softmax-temperature/mine.py",
    }
    ok = ("work/headed.py", "work/notebooks/good.ipynb", "work/softmax-temperature/mine.py")
    for name in ok:
        assert suites[name].failures == suites[name].errors == 0 and suites[name].tests == 5
    wrong = suites["work/notebooks/wrong.ipynb"]  # one hidden check fails, one overflows
    assert (wrong.failures, wrong.errors) == (1, 1)
    for name in ("work/notebooks/broken.ipynb", "work/notes.py"):
        case = next(iter(suites[name]))
        assert case.result and case.result[0].type == "rejected"
    text = summary.read_text()
    assert text.startswith("earlier step\n## Grading: 3 of 6 passed")
    assert "cannot tell which exercise notes.py is for" in text and "not valid JSON" in text
    assert "[6/6]" in done.stderr and "3 of 6 passed" in done.stderr


def test_ci_exit_codes(course: Path, catalog: Catalog, tmp_path: Path) -> None:
    good = tmp_path / "good.ipynb"
    good.write_bytes(as_bytes(completed(released(catalog), CORRECT)))
    assert grader(course, "ci", str(good)).returncode == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = grader(course, "ci", str(empty))
    assert nothing.returncode == 2 and "no .py or .ipynb files" in nothing.stderr
    unknown = grader(course, "ci", str(good), "--exercise", "nope")
    assert unknown.returncode == 2 and "unknown exercise 'nope'" in unknown.stderr
    missing = grader(course, "ci", str(tmp_path / "absent.ipynb"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr


def test_the_documented_github_actions_workflow_runs_here(
    course: Path, catalog: Catalog, tmp_path: Path
) -> None:
    """Every `run:` step after the grader's installation, as GitHub would run it, in a course
    repository: the exercises, the students' work, and the job summary file."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = next(iter(workflow["jobs"].values()))["steps"]
    runs = [s for s in steps if "run" in s and s.get("id") != "install"]
    assert [s.get("id") for s in steps if "run" in s] == ["install", "grade"]
    repo = tmp_path / "repo"
    shutil.copytree(course, repo)
    work = write_course_repo(repo, catalog)
    shutil.rmtree(work / "notebooks")
    (repo / "work" / "notes.py").unlink()
    step_summary = tmp_path / "step_summary.md"
    env = {
        **os.environ,
        "PATH": f"{Path(GRADER).parent}:{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(step_summary),
        "GITHUB_WORKSPACE": str(repo),
    }
    for step in runs:
        done = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=repo, env={**env, **step.get("env", {})},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "## Grading: 2 of 2 passed" in step_summary.read_text()
    assert junitparser.JUnitXml.fromfile(str(repo / "grades" / "junit.xml"))
    (repo / "work" / "softmax-temperature" / "mine.py").write_text(
        "import math\ndef softmax(l, t=1.0):\n    return l\n"
    )
    failed = subprocess.run(
        ["bash", "-e", "-c", runs[-1]["run"]],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert failed.returncode == 1


def test_release_bytes_are_stable(catalog: Catalog) -> None:
    """Releasing twice gives the same file, so a course repository's diff stays quiet."""
    first = notebook_bytes(catalog.get("softmax-temperature"))
    assert first == notebook_bytes(catalog.get("softmax-temperature"))
    nbformat.validate(nbformat.reads(first.decode(), as_version=4))
