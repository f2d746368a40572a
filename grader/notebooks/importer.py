"""An instructor's nbgrader source notebook made into an exercise package.

- Markdown cells become the lesson (`README.md`); the first `# heading` is the title.
- Code cells that are neither solutions nor tests (imports, data, helpers) are setup: in the
  skeleton, in the reference solution, and run on the trusted side before each test cell.
- Solution cells give the reference solution (delimiters dropped) and, cleared by nbgrader's
  `ClearSolutions`, the skeleton.
- Autograded test cells give the tests: the part a student sees (nbgrader's `ClearHiddenTests`)
  becomes a public test; a cell with a hidden region becomes a hidden test as a whole, worth the
  cell's points (its public part is then worth none, so a cell counts once).

The test cells run in the trusted harness with the solution's names bound to the sandboxed
submission (`grader.notebooks.cells.run_test_cell`). The package's settings come from the
notebook's metadata `grader` (id, title, summary, track, level, minutes, tier, prerequisites,
entrypoint, preload, limits), then from the options, then from defaults.
"""

from __future__ import annotations

import ast
import copy
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.notebooks.extract import cell_text, defined_names, nbgrader_meta

SOLUTION_LINE = re.compile(r"^\s*#+\s*(BEGIN|END) SOLUTION\s*$")
HIDDEN_LINE = re.compile(r"^\s*#+\s*(BEGIN|END) HIDDEN TESTS\s*$")
SLUG_CHARS = re.compile(r"[^a-z0-9]+")
SPEC_KEYS = (
    "title",
    "summary",
    "track",
    "level",
    "minutes",
    "tier",
    "prerequisites",
    "entrypoint",
    "preload",
    "source_kb",
    "resources",
)


class ImportProblem(Exception):
    """The source notebook cannot become an exercise; the message says what to change."""


@dataclass
class TestCell:
    grade_id: str
    visible: str
    full: str
    points: float

    @property
    def has_hidden(self) -> bool:
        return self.full.strip() != self.visible.strip()


@dataclass
class Imported:
    slug: str
    exercise_dir: Path
    solution_dir: Path
    public_tests: int
    hidden_tests: int
    track_added: bool = False


def import_notebook(
    source: Path,
    exercises_dir: Path,
    solutions_dir: Path,
    *,
    slug: str | None = None,
    track: str | None = None,
    force: bool = False,
) -> Imported:
    """Write `exercises/<slug>/` and `solutions/<slug>/` from the source notebook at `source`."""
    notebook = _read(source)
    meta = notebook.metadata.get("grader", {})
    meta = meta if isinstance(meta, dict) else {}
    slug = slug or str(meta.get("id") or "") or SLUG_CHARS.sub("-", source.stem.lower()).strip("-")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug):
        raise ImportProblem(
            f"{slug!r} is not a slug (lowercase letters, digits and single dashes); pass --slug"
        )
    exercise_dir, solution_dir = exercises_dir / slug, solutions_dir / slug
    if (exercise_dir.exists() or solution_dir.exists()) and not force:
        raise ImportProblem(f"{exercise_dir} or {solution_dir} already exists; pass --force to replace them")

    lesson, setup, solution, skeleton, tests = _split(notebook, source)
    if not solution:
        raise ImportProblem(
            f"{source.name} has no solution cells: mark the cells students complete as nbgrader "
            "'Autograded answer' cells, with ### BEGIN SOLUTION / ### END SOLUTION around the answer"
        )
    if not tests:
        raise ImportProblem(
            f"{source.name} has no autograded test cells: mark the cells that check the answer as "
            "nbgrader 'Autograder tests' cells"
        )
    title = str(meta.get("title") or _title(lesson) or slug.replace("-", " ").capitalize())
    spec: dict[str, Any] = {
        "id": slug,
        "title": title[:120],
        "summary": _summary(lesson, title),
        "track": track or str(meta.get("track") or "notebooks"),
        "level": 1,
        "minutes": 30,
        "tier": "free",
        "prerequisites": [],
        "resources": "cpu",
        "entrypoint": slug.replace("-", "_"),
        "preload": [],
    }
    for key in SPEC_KEYS:
        if key in meta and not (key == "track" and track):
            spec[key] = meta[key]
    if isinstance(meta.get("limits"), dict):
        spec["limits"] = meta["limits"]
    trees = [ast.parse(code) for code in solution]
    names = sorted(set().union(*(defined_names(tree) for tree in trees)))
    callables = sorted(set().union(*(defined_names(tree, callables_only=True) for tree in trees)))
    values = [n for n in names if n not in callables]

    staging = exercises_dir.parent / f".import-{slug}"
    shutil.rmtree(staging, ignore_errors=True)
    ex_stage, sol_stage = staging / "exercise", staging / "solution"
    ex_stage.mkdir(parents=True)
    sol_stage.mkdir(parents=True)
    try:
        (ex_stage / "exercise.toml").write_text(_toml(spec), encoding="utf-8")
        (ex_stage / "README.md").write_text(lesson or f"# {title}\n", encoding="utf-8")
        header = f'"""{title}: complete the functions below (from {source.name})."""\n\n'
        (ex_stage / "skeleton.py").write_text(
            header + "\n\n\n".join(setup + skeleton) + "\n", encoding="utf-8"
        )
        (sol_stage / "solution.py").write_text(
            f'"""Reference solution of {title}."""\n\n' + "\n\n\n".join(setup + solution) + "\n",
            encoding="utf-8",
        )
        setup_code = "\n\n".join(setup)
        public = list(tests)
        hidden = [t for t in tests if t.has_hidden]
        (ex_stage / "test_public.py").write_text(
            _tests_module(
                f"Public tests of {title}, from the test cells of {source.name}.",
                setup_code,
                callables,
                values,
                [(t.grade_id, t.visible, 0.0 if t.has_hidden else t.points) for t in public],
            ),
            encoding="utf-8",
        )
        (sol_stage / "test_hidden.py").write_text(
            _tests_module(
                f"Hidden tests of {title}: test cells of {source.name}, hidden parts included.",
                setup_code,
                callables,
                values,
                [(f"{t.grade_id}_hidden", t.full, t.points) for t in hidden],
            ),
            encoding="utf-8",
        )
        track_added = _ensure_track(exercises_dir / "tracks.toml", spec["track"])
        for stage, target in ((ex_stage, exercise_dir), (sol_stage, solution_dir)):
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(stage), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Imported(slug, exercise_dir, solution_dir, len(public), len(hidden), track_added)


def _read(source: Path) -> Any:
    from grader.notebooks.reader import read_notebook
    from grader.static import Rejected

    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        raise ImportProblem(f"no such file: {source}") from None
    except OSError as exc:
        raise ImportProblem(f"cannot read {source}: {exc.strerror}") from None
    try:
        return read_notebook(raw, source.name)
    except Rejected as exc:
        raise ImportProblem(exc.message) from None


def _split(notebook: Any, source: Path) -> tuple[str, list[str], list[str], list[str], list[TestCell]]:
    from nbconvert.exporters.exporter import ResourcesDict
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    notebook = copy.deepcopy(notebook)
    notebook.metadata.setdefault("kernelspec", {}).setdefault("language", "python")
    try:
        student, _ = ClearSolutions().preprocess(copy.deepcopy(notebook), ResourcesDict())
        visible, _ = ClearHiddenTests().preprocess(copy.deepcopy(notebook), ResourcesDict())
    except (RuntimeError, ValueError) as exc:
        raise ImportProblem(f"nbgrader cannot release {source.name}: {exc}") from None
    lesson: list[str] = []
    setup: list[str] = []
    solution: list[str] = []
    skeleton: list[str] = []
    tests: list[TestCell] = []
    for number, (cell, cleared, shown) in enumerate(
        zip(notebook.cells, student.cells, visible.cells, strict=True), 1
    ):
        text = cell_text(cell.source)
        if cell.cell_type == "markdown":
            if not nbgrader_meta(cell).get("solution"):
                lesson.append(text.strip())
            continue
        if cell.cell_type != "code" or not text.strip():
            continue
        meta = nbgrader_meta(cell)
        label = f"cell {number}" + (f" ({meta['grade_id']})" if meta.get("grade_id") else "")
        if meta.get("solution"):
            answer = "\n".join(line for line in text.splitlines() if not SOLUTION_LINE.match(line))
            _must_parse(answer, label, source)
            solution.append(answer.strip())
            skeleton.append(cell_text(cleared.source).strip())
        elif meta.get("grade"):
            grade_id = str(meta.get("grade_id") or f"cell_{number}")
            full = "\n".join(line for line in text.splitlines() if not HIDDEN_LINE.match(line))
            _must_parse(full, label, source)
            points = float(meta.get("points") or 0) or 1.0
            tests.append(TestCell(_identifier(grade_id), cell_text(shown.source), full, points))
        else:
            _must_parse(text, label, source)
            setup.append(text.strip())
    return "\n\n".join(lesson).strip() + "\n", setup, solution, skeleton, tests


def _must_parse(code: str, label: str, source: Path) -> None:
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise ImportProblem(f"{source.name}, {label}, line {exc.lineno}: {exc.msg}") from None


def _identifier(grade_id: str) -> str:
    name = re.sub(r"\W+", "_", grade_id).strip("_").lower() or "cell"
    return name if name.startswith("test") else f"test_{name}"


def _tests_module(
    doc: str, setup: str, callables: list[str], values: list[str], tests: list[tuple[str, str, float]]
) -> str:
    out = [
        f'"""{doc}"""',
        "",
        "import pytest",
        "",
        "from grader.notebooks.cells import run_test_cell",
        "",
        f"SETUP = {_literal(setup)}",
        f"CALLABLES = {callables!r}",
        f"VALUES = {values!r}",
    ]
    for name, code, points in tests:
        out += [
            "",
            "",
            f"@pytest.mark.weight({points:g})",
            f"def {name}(submission):",
            f'    """The test cell {name.removeprefix("test_").removesuffix("_hidden")}."""',
            f"    cell = {_literal(code)}",
            f"    run_test_cell(submission, SETUP, CALLABLES, VALUES, cell, {name!r})",
        ]
    return "\n".join(out) + "\n"


def _literal(code: str) -> str:
    """A string literal for `code`: a readable triple-quoted block when that is exact, else repr."""
    text = code.rstrip("\n") + "\n"
    if '"""' in text or "\\" in text or any(ord(c) < 32 and c not in "\n\t" for c in text):
        return repr(text)
    literal = '"""\\\n' + text + '"""'
    return literal if ast.literal_eval(literal) == text else repr(text)


def _title(lesson: str) -> str:
    for line in lesson.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _summary(lesson: str, title: str) -> str:
    for block in lesson.split("\n\n"):
        text = " ".join(block.split())
        if text and not text.startswith("#"):
            return text[:297] + "..." if len(text) > 300 else text
    return title[:300]


def _toml(spec: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'

    lines = [f"{k} = {value(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    for k, v in spec.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]", *(f"{kk} = {value(vv)}" for kk, vv in v.items())]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # what we write must read back
    return text


def _ensure_track(path: Path, track: str) -> bool:
    """Add `track` to tracks.toml when it is not listed; True when added."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    listed = {t.get("id") for t in tomllib.loads(text).get("tracks", [])} if text else set()
    if track in listed:
        return False
    block = (
        f'\n[[tracks]]\nid = "{track}"\ntitle = "{track.replace("-", " ").capitalize()}"\n'
        'summary = "Exercises imported from notebooks."\n'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + block, encoding="utf-8")
    return True
