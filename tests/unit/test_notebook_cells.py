"""Notebooks on the trusted side: reading, choosing the cells to grade, releasing, importing,
feedback and the in-notebook checks. Nothing here starts a sandbox."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import nbformat.v4 as v4
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.catalog import load_catalog
from grader.notebooks import expected_names, extract_module, read_notebook
from grader.notebooks.extract import nbgrader_meta, strip_magics
from grader.notebooks.feedback import edited_locked_cells, feedback_html, feedback_notebook
from grader.notebooks.importer import ImportProblem, import_notebook
from grader.notebooks.kernel import check
from grader.notebooks.release import mark_cell, release_notebook, split_module
from grader.static import Rejected
from grader.verdict import Outcome, Provenance, Status, TestResult, Verdict

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "fixtures" / "notebooks" / "softmax-temperature.ipynb"
NAMES = ["causal_mask", "scaled_dot_product_attention"]


def bundled() -> Any:
    return load_catalog(ROOT / "exercises", ROOT / "solutions")


def solution_cell(code: str, grade_id: str) -> Any:
    return mark_cell(v4.new_code_cell(code), grade_id, solution=True)


def grading_cell(code: str, grade_id: str) -> Any:
    return mark_cell(v4.new_code_cell(code), grade_id, grade=True, points=1)


def raw(notebook: Any) -> bytes:
    return nbformat.writes(notebook).encode()


# -- reading: every malformed notebook is a clear rejection ---------------------------------------


@pytest.mark.parametrize(
    ("data", "size", "expected"),
    [
        (b'{"cells": [', None, "not valid JSON (line 1, column 12"),
        (b"\xff\xfe{}", None, "not UTF-8 text (byte 0xff at offset 0)"),
        (b"[1, 2]", None, "not a Jupyter notebook"),
        (b'{"cells": [], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}', None, "nbformat version 3"),
        (b'{"cells": [], "metadata": {}, "nbformat_minor": 0}', None, "nbformat version missing"),
        (
            b'{"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
            None,
            "not a valid nbformat 4 notebook",
        ),
        (b"   ", None, "is empty"),
        (b"{}", 500 * 1024 * 1024, "is 500.0 MB; notebooks are limited to 8.0 MB"),
        (b"[" * 100_000 + b"]" * 100_000, None, "nested too deeply"),
    ],
    ids=[
        "bad-json",
        "not-utf8",
        "not-a-notebook",
        "nbformat-3",
        "no-nbformat",
        "schema",
        "empty",
        "500MB",
        "deep",
    ],
)
def test_malformed_notebooks_are_rejected_with_a_reason(data: bytes, size: int | None, expected: str) -> None:
    with pytest.raises(Rejected) as caught:
        read_notebook(data, "work.ipynb", size)
    assert expected in caught.value.message
    assert "Traceback" not in caught.value.message


def test_a_notebook_saved_with_lists_of_lines_reads() -> None:
    notebook = v4.new_notebook(cells=[solution_cell("x = 1\ny = 2\n", "a")])
    data = json.loads(raw(notebook))
    data["cells"][0]["source"] = ["x = 1\n", "y = 2\n"]
    assert read_notebook(json.dumps(data).encode()).cells[0].source == "x = 1\ny = 2\n"


# -- which cells make the module ------------------------------------------------------------------


def student_notebook() -> Any:
    return v4.new_notebook(
        cells=[
            v4.new_markdown_cell("# My work"),
            solution_cell("import torch", "imports"),
            solution_cell("def causal_mask(n_q, n_k, align='top-left'):\n    return 'mine'", "causal_mask"),
            v4.new_code_cell("causal_mask(2, 3)  # scratch: never graded"),
            grading_cell("assert causal_mask(1, 1) == 'mine'", "test_mask"),
            solution_cell("def scaled_dot_product_attention(q, k, v):\n    return q", "sdpa"),
            grading_cell("assert False, 'a test cell never runs'", "test_sdpa"),
        ]
    )


def test_solution_cells_make_the_module_and_test_cells_never_do() -> None:
    done = extract_module(student_notebook(), "attention.py", NAMES, "work.ipynb")
    assert done.mode == "nbgrader"
    assert [(c.number, c.role, c.grade_id) for c in done.cells] == [
        (2, "solution", "imports"),
        (3, "solution", "causal_mask"),
        (6, "solution", "sdpa"),
    ]
    assert "return 'mine'" in done.source and "scratch" not in done.source and "assert" not in done.source
    lines = done.source.splitlines()
    assert lines[done.cells[1].line - 1].startswith("def causal_mask")
    assert lines[done.cells[2].line - 1].startswith("def scaled_dot_product_attention")
    compile(done.source, "attention.py", "exec")


def test_edited_deleted_or_duplicated_test_cells_change_nothing() -> None:
    original = extract_module(student_notebook(), "attention.py", NAMES).source
    edited = student_notebook()
    edited.cells[4].source = "import os; os.system('rm -rf /')"
    deleted = student_notebook()
    del deleted.cells[6]
    del deleted.cells[4]
    duplicated = student_notebook()
    duplicated.cells.insert(5, copy.deepcopy(duplicated.cells[4]))
    stripped = student_notebook()  # a test cell whose metadata was removed is scratch: not graded
    stripped.cells[6].metadata = {}
    for notebook in (edited, deleted, duplicated, stripped):
        assert _body(extract_module(notebook, "attention.py", NAMES).source) == _body(original)


def _body(source: str) -> list[str]:
    """The module's code without the cell markers (cell numbers move when cells are removed)."""
    return [line for line in source.splitlines() if line.strip() and not line.startswith("# ")]


def test_without_nbgrader_metadata_the_exercise_names_choose_the_cells() -> None:
    notebook = v4.new_notebook(
        cells=[
            v4.new_code_cell("import torch\nEPS = 1e-9"),
            v4.new_code_cell(
                "def causal_mask(n_q, n_k, align='top-left'):\n    return 1\nprint(causal_mask(1, 1))"
            ),
            v4.new_code_cell("result = causal_mask(3, 3)"),  # calls the student's code: scratch
            v4.new_code_cell("print('hello')"),
        ]
    )
    done = extract_module(notebook, "attention.py", NAMES)
    assert done.mode == "names"
    assert [(c.number, c.role) for c in done.cells] == [(1, "setup"), (2, "definition")]
    assert "result =" not in done.source and "hello" not in done.source
    assert any("scaled_dot_product_attention" in note for note in done.notes)


def test_no_solution_cells_is_rejected() -> None:
    notebook = v4.new_notebook(cells=[v4.new_markdown_cell("hi"), v4.new_code_cell("print(1)")])
    with pytest.raises(Rejected, match="has no solution cells.*causal_mask, scaled_dot_product_attention"):
        extract_module(notebook, "attention.py", NAMES, "work.ipynb")


def test_a_cell_that_does_not_parse_is_rejected_with_its_place() -> None:
    notebook = student_notebook()
    notebook.cells[2].source = "def causal_mask(n_q, n_k:\n    return 1"
    with pytest.raises(Rejected) as caught:
        extract_module(notebook, "attention.py", NAMES, "work.ipynb")
    assert "Syntax error in work.ipynb, cell 3 (causal_mask), line 1" in caught.value.message


def test_magics_and_shell_escapes_are_removed_never_run() -> None:
    code, removed = strip_magics(
        "!pip install torch\n%load_ext autoreload\ndef f():\n    %time g()\n    return 1\nf?"
    )
    assert code is not None
    assert "pip" not in code and "%" not in code and "?" not in code
    assert code.count("pass  # notebook-only line removed") == 4
    assert "    pass  # notebook-only line removed\n    return 1" in code  # indentation kept
    compile(code, "cell", "exec")
    assert removed == ["!pip install torch", "%load_ext autoreload", "%time g()", "f?"]
    timed, _ = strip_magics("%%time\nx = 1\n")
    assert timed is not None and "x = 1" in timed
    shell, why = strip_magics("%%bash\nrm -rf /\n")
    assert shell is None and why == ["a %%bash"]
    plain = "x = '%not a magic'\n"
    assert strip_magics(plain) == (plain, [])


def test_magics_in_a_notebook_leave_a_note() -> None:
    notebook = student_notebook()
    notebook.cells[1].source = "!pip install torch\nimport torch"
    notebook.cells.insert(2, solution_cell("%%bash\necho hi", "shell"))
    done = extract_module(notebook, "attention.py", NAMES)
    assert "pip" not in _body(done.source)[0]
    assert any("removed '!pip install torch'" in n for n in done.notes)
    assert any("%%bash cell, not Python" in n for n in done.notes)


def test_expected_names_come_from_the_skeleton() -> None:
    causal = bundled().get("causal-masking")
    assert expected_names(causal.skeleton) == NAMES


# -- releasing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", [e.slug for e in load_catalog(ROOT / "exercises", ROOT / "solutions")])
def test_every_exercise_releases_a_valid_notebook_whose_cells_grade_as_the_skeleton(slug: str) -> None:
    exercise = bundled().get(slug)
    notebook = release_notebook(exercise)
    nbformat.validate(notebook)
    assert notebook.metadata["grader"]["exercise"] == slug
    solution_ids = [
        c.metadata["nbgrader"]["grade_id"]
        for c in notebook.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    ]
    names = expected_names(exercise.skeleton)
    assert [n for n in solution_ids if n != "imports"] == names
    tests = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert tests and all(
        c.metadata["nbgrader"]["locked"] and c.metadata["nbgrader"]["points"] > 0 for c in tests
    )
    assert edited_locked_cells(notebook) == []
    done = extract_module(notebook, f"{exercise.spec.entrypoint}.py", names)
    assert _body(done.source) == _body(_skeleton_module(exercise))


def _skeleton_module(exercise: Any) -> str:
    return "\n".join(c.code for c in split_module(exercise.skeleton.read_text(), "imports"))


def fill(notebook: Any, solution: str) -> Any:
    """The released notebook with each solution cell replaced by the solution's code of that name;
    helpers the solution adds go into the first cell."""
    chunks = {c.name: c.code for c in split_module(solution, "imports")}
    filled = copy.deepcopy(notebook)
    cells = [c for c in filled.cells if c.metadata.get("nbgrader", {}).get("solution")]
    for cell in cells:
        cell.source = chunks.pop(cell.metadata["nbgrader"]["grade_id"], cell.source)
    cells[0].source += "\n\n" + "\n\n".join(chunks.values())
    return filled


def run_cells(notebook: Any) -> list[str]:
    """Run a notebook's code cells in one namespace, as a kernel would; the failed cells' ids."""
    namespace: dict[str, Any] = {}
    failed = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            exec(compile(cell.source, "cell", "exec"), namespace)  # noqa: S102 - the project's own code
        except AssertionError:
            failed.append(cell.metadata["nbgrader"]["grade_id"])
    return failed


@pytest.mark.parametrize("slug", ["causal-masking", "rmsnorm", "bpe-encode", "top-p-sampling"])
def test_the_released_public_test_cells_run_in_the_notebook(
    slug: str, capsys: pytest.CaptureFixture[str]
) -> None:
    exercise = bundled().get(slug)
    notebook = release_notebook(exercise)
    tests = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if nbgrader_meta(c).get("grade")]
    assert run_cells(fill(notebook, (exercise.solution_dir / "solution.py").read_text())) == []
    assert capsys.readouterr().out.count("passed: test_") == len(tests)
    assert run_cells(notebook) == tests  # the skeleton fails every check
    assert capsys.readouterr().out.count("FAILED test_") >= len(tests)


def test_check_reports_a_missing_name() -> None:
    def test_needs_f(submission: Any) -> None:
        submission.f(1)

    with pytest.raises(AssertionError, match="1 of 1 case"):
        check(test_needs_f, {})


# -- importing an instructor's source notebook ----------------------------------------------------


def catalog_dirs(tmp_path: Path) -> tuple[Path, Path]:
    exercises, solutions = tmp_path / "exercises", tmp_path / "solutions"
    exercises.mkdir()
    solutions.mkdir()
    shutil.copy(ROOT / "exercises" / "tracks.toml", exercises / "tracks.toml")
    return exercises, solutions


def test_import_makes_a_package_the_catalog_loads(tmp_path: Path) -> None:
    exercises, solutions = catalog_dirs(tmp_path)
    done = import_notebook(SOURCE, exercises, solutions)
    assert (done.slug, done.public_tests, done.hidden_tests, done.track_added) == (
        "softmax-temperature",
        3,
        2,
        True,
    )
    exercise = load_catalog(exercises, solutions).get("softmax-temperature")
    assert exercise.spec.title == "Softmax with a temperature" and exercise.spec.minutes == 15
    skeleton = exercise.skeleton.read_text()
    assert "raise NotImplementedError()" in skeleton and "math.exp" not in skeleton
    assert "BEGIN SOLUTION" not in (exercise.solution_dir / "solution.py").read_text()
    assert "math.exp" in (exercise.solution_dir / "solution.py").read_text()
    public = exercise.public_tests.read_text()
    assert "0.8807970779778823" in public and "1000.0" not in public and "HIDDEN" not in public
    assert "1000.0" in exercise.hidden_tests.read_text()
    assert expected_names(exercise.skeleton) == ["softmax", "argmax"]


def test_import_refuses_to_overwrite_and_explains_bad_sources(tmp_path: Path) -> None:
    exercises, solutions = catalog_dirs(tmp_path)
    import_notebook(SOURCE, exercises, solutions)
    with pytest.raises(ImportProblem, match="already exists; pass --force"):
        import_notebook(SOURCE, exercises, solutions)
    import_notebook(SOURCE, exercises, solutions, force=True)
    source = nbformat.read(SOURCE, as_version=4)
    no_tests = copy.deepcopy(source)
    no_tests.cells = [c for c in source.cells if not c.metadata.get("nbgrader", {}).get("grade")]
    path = tmp_path / "no-tests.ipynb"
    nbformat.write(no_tests, path)
    with pytest.raises(ImportProblem, match="no autograded test cells"):
        import_notebook(path, exercises, solutions, slug="no-tests")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{")
    with pytest.raises(ImportProblem, match="not valid JSON"):
        import_notebook(broken, exercises, solutions, slug="broken")
    unmarked = copy.deepcopy(source)
    unmarked.cells[3].metadata = {}  # delimiters without solution metadata
    path = tmp_path / "unmarked.ipynb"
    nbformat.write(unmarked, path)
    with pytest.raises(ImportProblem, match="nbgrader cannot release"):
        import_notebook(path, exercises, solutions, slug="unmarked")


# -- feedback --------------------------------------------------------------------------------------


def verdict(message: str) -> Verdict:
    return Verdict(
        status=Status.FAILED,
        summary="1 of 2 tests passed",
        score=1,
        max_score=2,
        tests=[
            TestResult(name="test_mask", visibility="public", outcome=Outcome.PASSED),
            TestResult(
                name="test_sdpa", visibility="public", outcome=Outcome.FAILED, message=message, hint="look"
            ),
        ],
        output="<script>alert(1)</script>",
        provenance=Provenance(exercise="causal-masking", exercise_version="abc", submission_sha256="0"),
    )


def test_feedback_puts_each_result_under_its_test_cell_and_escapes_what_the_student_controls() -> None:
    notebook = student_notebook()
    notebook.cells.append(v4.new_markdown_cell("<script>alert('student')</script>"))
    notebook.cells[6].source = "edited"
    notebook.cells[6].metadata["nbgrader"]["checksum"] = "0" * 64
    message = "expected ``` <img src=x onerror=alert(1)> | row"
    result = feedback_notebook(notebook, verdict(message))
    nbformat.validate(result)
    assert result.cells[0].source.startswith("# Grade: Failed")
    assert "test\\_sdpa" in result.cells[0].source and "were edited" in result.cells[0].source
    after = [c.source for c in result.cells if c.cell_type == "markdown"]
    assert any("failed" in s and "````text" in s and message in s for s in after)
    html = feedback_html(result)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "Grade: Failed" in html


# -- anything a student can upload: a rejection at worst, never a crash ----------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
cell_dicts = st.fixed_dictionaries(
    {
        "cell_type": st.sampled_from(["code", "markdown", "raw", 3]),
        "source": st.one_of(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=3), json_values),
        "metadata": st.one_of(
            st.fixed_dictionaries(
                {
                    "nbgrader": st.one_of(
                        json_values,
                        st.fixed_dictionaries(
                            {"solution": json_values, "grade": json_values, "grade_id": json_values}
                        ),
                    )
                }
            ),
            json_values,
        ),
        "outputs": st.just([]),
        "execution_count": st.none(),
    }
)


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(cell_dicts, max_size=5), extra=json_values)
def test_no_notebook_crashes_the_reader_or_the_extraction(cells: list[dict[str, Any]], extra: Any) -> None:
    document = {"cells": cells, "metadata": {"grader": extra}, "nbformat": 4, "nbformat_minor": 4}
    try:
        notebook = read_notebook(json.dumps(document).encode())
        done = extract_module(notebook, "attention.py", NAMES)
    except Rejected as exc:
        assert exc.message
        return
    compile(done.source, "attention.py", "exec")
