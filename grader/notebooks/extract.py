"""From a student's notebook to the module an exercise expects.

The module is made of the notebook's code cells, in notebook order, chosen by what they are:

- solution cells (nbgrader metadata `solution: true`): always, that is where the answer lives;
- cells of definitions only (imports, functions, classes, constants): setup the solution needs;
- cells that define one of the exercise's names (those of its skeleton): a function rewritten
  further down counts, as it would when the notebook runs top to bottom.

Test cells (`grade: true` without `solution`, or released as tests: metadata `grader.tests`) are
never taken, and nor are scratch cells (calls,
prints, plots): the exercise's own tests grade the module, so editing, deleting or duplicating a
test cell changes nothing. IPython magics and shell escapes are removed, never run: the module
is plain Python, and it only ever runs inside the sandbox.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.static import Rejected
from grader.verdict import NotebookCell, NotebookSource

PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}  # their body is Python: kept, minus the line
MAGIC_LINE = re.compile(r"^(\s*)(%|!)")
ASSIGNED_MAGIC = re.compile(r"^(\s*)[\w.\[\], ]+=\s*(%|!)")
HELP_LINE = re.compile(r"^(\s*)[\w.]+\?\??\s*$")
DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)


@dataclass
class Extraction:
    module: str  # the file name the exercise expects, e.g. norm.py
    source: str
    cells: list[NotebookCell]
    mode: str  # "nbgrader": chosen by solution metadata; "names": by the exercise's names
    notes: list[str] = field(default_factory=list)

    def describe(self, filename: str) -> NotebookSource:
        """How the notebook `filename` became the module, as a verdict records it."""
        return NotebookSource(
            filename=filename, module=self.module, mode=self.mode, cells=self.cells, notes=self.notes
        )


def expected_names(skeleton: Path) -> list[str]:
    """The functions and classes a skeleton asks for, in its order."""
    try:
        tree = ast.parse(skeleton.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
    ]


def extract_module(notebook: Any, module: str, expected: Collection[str], name: str = "") -> Extraction:
    """The module `module` made of `notebook`'s cells; Rejected when there is nothing to grade or
    a cell that would be graded (or could not be told apart from one) does not parse."""
    name = name or "the notebook"
    notes: list[str] = []
    chosen: list[tuple[NotebookCell, str]] = []
    any_solution = False
    for number, cell in enumerate(notebook.get("cells", []), 1):
        if cell.get("cell_type") != "code":
            continue
        meta = nbgrader_meta(cell)
        label = _label(number, meta)
        if meta.get("grade") and not meta.get("solution") or _is_tests(cell):
            continue  # a test cell: the exercise's tests are what grade
        code = cell_text(cell.get("source", ""))
        if not code.strip():
            continue
        python, removed = strip_magics(code)
        if python is None:
            notes.append(f"{label}: {removed[0]} cell, not Python: left out")
            continue
        notes += [f"{label}: removed {line!r} (IPython syntax never runs when grading)" for line in removed]
        code = python
        tree = _parse(code, label, name)
        if meta.get("solution"):
            any_solution = True
            role = "solution"
        elif _definitions_only(tree, expected):
            role = "setup"
        elif defined_names(tree) & set(expected):
            role = "definition"
        else:
            continue  # scratch work: calls, prints, plots
        chosen.append(
            (NotebookCell(number=number, role=role, grade_id=str(meta.get("grade_id") or "")), code)
        )
    defined = set().union(*(defined_names(ast.parse(code)) for _, code in chosen)) if chosen else set()
    if not any_solution and not (defined & set(expected)):
        wanted = ", ".join(expected) if expected else "the exercise's functions"
        raise Rejected(
            f"{name} has no solution cells: no cell is marked as an nbgrader solution cell, and none "
            f"defines {wanted}. Write your answer in the notebook's solution cells (released with "
            "`grader notebook release`), or define those names in a code cell."
        )
    missing = [n for n in expected if n not in defined]
    if missing:
        notes.append(f"not defined in any graded cell: {', '.join(missing)}")
    return _assemble(module, chosen, "nbgrader" if any_solution else "names", notes, name)


def strip_magics(code: str) -> tuple[str | None, list[str]]:
    """`code` with IPython-only lines made into `pass`; None for a cell magic whose body is not
    Python. Code that already parses is left exactly as it is."""
    if _parses(code):
        return code, []
    lines = code.splitlines()
    removed: list[str] = []
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    head = lines[first].strip() if lines else ""
    if head.startswith("%%"):
        magic = head[2:].split(maxsplit=1)[0] if len(head) > 2 else ""
        if magic not in PYTHON_CELL_MAGICS:
            return None, [f"a %%{magic}"]
        removed.append(head)
        lines[first] = ""
    for i, line in enumerate(lines):
        match = MAGIC_LINE.match(line) or ASSIGNED_MAGIC.match(line) or HELP_LINE.match(line)
        if match and not _parses(line.strip()):
            removed.append(line.strip())
            lines[i] = f"{match.group(1)}pass  # notebook-only line removed"
    return "\n".join(lines), removed


def _assemble(
    module: str, chosen: list[tuple[NotebookCell, str]], mode: str, notes: list[str], name: str
) -> Extraction:
    parts = [f"# {module}: made from the code cells of {Path(name).name}, in notebook order.\n"]
    line = 2
    cells = []
    for cell, code in chosen:
        tag = f" ({cell.grade_id})" if cell.grade_id else ""
        header = f"\n# --- cell {cell.number}{tag}: {cell.role} ---\n"
        parts.append(header)
        line += header.count("\n")
        cell.line = line
        cells.append(cell)
        body = code if code.endswith("\n") else code + "\n"
        parts.append(body)
        line += body.count("\n")
    return Extraction(module=module, source="".join(parts), cells=cells, mode=mode, notes=notes)


def nbgrader_meta(cell: Any) -> dict[str, Any]:
    """A cell's nbgrader metadata; empty when it has none or it is not a mapping."""
    meta = cell.get("metadata", {})
    found = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return found if isinstance(found, dict) else {}


def _is_tests(cell: Any) -> bool:
    """A cell released as part of the exercise's tests (their imports, say)."""
    meta = cell.get("metadata", {})
    own = meta.get("grader", {}) if isinstance(meta, dict) else {}
    return isinstance(own, dict) and own.get("tests") is True


def _label(number: int, meta: dict[str, Any]) -> str:
    grade_id = meta.get("grade_id")
    return f"cell {number}" + (f" ({grade_id})" if isinstance(grade_id, str) and grade_id else "")


def cell_text(source: Any) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    if isinstance(source, list):
        return "".join(str(s) for s in source)
    return str(source)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _parse(code: str, label: str, name: str) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        text = (exc.text or "").rstrip("\n")
        pointer = f"\n    {text}\n    {' ' * max((exc.offset or 1) - 1, 0)}^" if text else ""
        raise Rejected(
            f"Syntax error in {name}, {label}, line {exc.lineno}: {exc.msg}{pointer}\n"
            "Fix that cell, or delete it if it is scratch work.",
            exc.lineno,
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise Rejected(f"{name}, {label} cannot be parsed: {type(exc).__name__}") from None


def _definitions_only(tree: ast.Module, expected: Collection[str]) -> bool:
    for node in tree.body:
        if isinstance(node, DEFINITIONS):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or a stray constant
        if isinstance(node, ast.Assign | ast.AnnAssign) and not _calls(node, expected):
            continue  # a constant or a setup value; not a call of the student's own functions
        return False
    return True


def _calls(node: ast.AST, names: Collection[str]) -> bool:
    return any(
        isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in names
        for sub in ast.walk(node)
    )


def defined_names(tree: ast.Module, *, callables_only: bool = False) -> set[str]:
    """The names a module binds at its top level: functions and classes, and unless
    `callables_only`, the names it assigns."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif callables_only:
            continue
        elif isinstance(node, ast.Assign):
            found |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.add(node.target.id)
    return found
