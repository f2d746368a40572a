"""The student notebook of an exercise, in nbgrader's format.

Cells: the lesson; the skeleton as solution cells (its header, then one cell per function or
class); the public tests as locked, graded cells that run in the notebook when the grader is
installed in its kernel. Locked cells carry nbgrader's checksum, so an edit to one shows in the
feedback (and changes nothing: the grade comes from the exercise's own tests).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from grader.catalog import Exercise

SCHEMA_VERSION = 3  # nbgrader's cell metadata schema
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


@dataclass
class Chunk:
    name: str
    code: str
    points: float = 1.0


def release_notebook(exercise: Exercise) -> Any:
    """The student notebook (an nbformat NotebookNode) for `exercise`."""
    import nbformat.v4 as v4
    from nbgrader.utils import compute_checksum

    spec = exercise.spec
    cells = [
        v4.new_markdown_cell(exercise.readme.read_text(encoding="utf-8")),
        v4.new_markdown_cell(
            "## Your solution\n\n"
            f"Write your code in the cells below: together they make `{spec.entrypoint}.py`. "
            "Only solution cells, cells of imports and definitions, and cells that define the "
            "exercise's functions are graded; scratch cells, outputs and magics are not.\n\n"
            f"To grade this notebook: `grader notebook grade {spec.id} {spec.id}.ipynb`, "
            "or upload it on the concept's page."
        ),
    ]
    for chunk in split_module(exercise.skeleton.read_text(encoding="utf-8"), header="imports"):
        cells.append(mark_cell(v4.new_code_cell(chunk.code), chunk.name, solution=True))
    header, tests = split_tests(exercise.public_tests.read_text(encoding="utf-8"))
    cells.append(
        v4.new_markdown_cell(
            "## Public tests\n\n"
            "These cells are locked: run them to check your work (they need the grader installed in "
            "this kernel). The grade itself comes from the grader, with hidden tests as well; "
            "editing or deleting these cells changes nothing."
        )
    )
    setup = header.rstrip() + "\nfrom grader.notebooks.kernel import check\n"
    cells.append(_tests_cell(mark_cell(v4.new_code_cell(setup), "public_tests_setup", locked=True)))
    for test in tests:
        code = f"{test.code.rstrip()}\n\n\ncheck({test.name}, globals())\n"
        cells.append(
            _tests_cell(mark_cell(v4.new_code_cell(code), test.name, grade=True, points=test.points))
        )
    for number, cell in enumerate(cells, 1):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        # stable ids: releasing again gives the same file, so a course repository's diff stays quiet
        cell["id"] = re.sub(r"[^A-Za-z0-9_-]", "-", f"{number}-{grade_id}" if grade_id else f"{number}-text")[
            :64
        ]
    for cell in cells:
        if cell.metadata.get("nbgrader", {}).get("locked"):
            cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata.update(
        {
            "kernelspec": KERNELSPEC,
            "language_info": {"name": "python"},
            "grader": {"exercise": spec.id, "version": exercise.version, "module": spec.entrypoint},
        }
    )
    return notebook


def notebook_bytes(exercise: Exercise) -> bytes:
    """The student notebook of `exercise`, as the bytes of an .ipynb file."""
    import nbformat

    return (nbformat.writes(release_notebook(exercise), version=4) + "\n").encode("utf-8")


def _tests_cell(cell: Any) -> Any:
    """Mark a cell as the exercise's tests: never part of the graded module."""
    cell.metadata["grader"] = {"tests": True}
    return cell


def mark_cell(
    cell: Any,
    grade_id: str,
    *,
    solution: bool = False,
    grade: bool = False,
    locked: bool = False,
    points: float = 0,
) -> Any:
    """`cell` with nbgrader's metadata: a solution cell, a graded (locked) test cell, or a locked cell."""
    meta: dict[str, Any] = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked or grade,
        "schema_version": SCHEMA_VERSION,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    if meta["locked"]:
        cell.metadata["deletable"] = False
        cell.metadata["editable"] = False
    return cell


def split_module(source: str, header: str) -> list[Chunk]:
    """`source` cut before each top-level function or class (with its decorators and the
    comments just above it); what comes before the first one is the chunk named `header`."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    starts: list[tuple[int, str]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            while start > 0 and lines[start - 1].lstrip().startswith("#"):
                start -= 1
            starts.append((start, node.name))
    chunks = []
    first = starts[0][0] if starts else len(lines)
    if "".join(lines[:first]).strip():
        chunks.append(Chunk(header, "".join(lines[:first]).strip() + "\n"))
    for i, (start, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(lines)
        chunks.append(Chunk(name, "".join(lines[start:end]).strip() + "\n"))
    return chunks


def split_tests(source: str) -> tuple[str, list[Chunk]]:
    """A test module cut into its header (everything but the tests) and its test functions."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    tests = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test")
    }
    chunks = [c for c in split_module(source, header="") if c.name in tests]
    for chunk in chunks:
        chunk.points = _weight(tests[chunk.name])
    kept: list[str] = []
    for node in tree.body:
        if node.name in tests if isinstance(node, ast.FunctionDef) else False:
            continue
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
        end = node.end_lineno or node.lineno
        kept.append("".join(lines[start:end]))
    return "\n".join(kept) + "\n", chunks


def _weight(node: ast.FunctionDef) -> float:
    """The test's `@pytest.mark.weight(n)`, else 1."""
    for decorator in node.decorator_list:
        if (
            isinstance(decorator, ast.Call)
            and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr == "weight"
            and decorator.args
            and isinstance(decorator.args[0], ast.Constant)
            and isinstance(decorator.args[0].value, int | float)
        ):
            return float(decorator.args[0].value)
    return 1.0
