"""`grader ci`: grade the files and notebooks of a repository in a CI job.

Each file is graded on its own: a broken notebook, an unknown exercise or an unreadable file is
that file's `rejected` verdict, and the batch goes on. JUnit XML (one suite per file) feeds test
report viewers; the Markdown summary suits a CI job summary. Exit 0 when every file passed, 1
when any did not, 2 when there was nothing to grade.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from grader.catalog import Catalog, CatalogError, Exercise, load_catalog
from grader.cli.app import CliError, SandboxOption, State, app, err, grade_file, handled, out
from grader.verdict import Provenance, Status, Verdict

SUFFIXES = (".py", ".ipynb")
SKIPPED_DIRS = {".git", ".ipynb_checkpoints", "__pycache__", ".venv", "venv", "node_modules", ".tox"}
HEADER_EXERCISE = re.compile(rb"^#\s*grader:\s*exercise\s*=\s*([a-z0-9-]+)\s*$", re.MULTILINE)
MARKS = {Status.PASSED: "✅", Status.TOO_SLOW: "🐢", Status.SYSTEM_ERROR: "⚠️"}


@dataclass
class Graded:
    path: str
    verdict: Verdict


@app.command()
@handled
def ci(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files, notebooks, or folders to search for them")],
    exercise: Annotated[
        str | None,
        typer.Option(
            help="Grade every file against this exercise (default: each notebook's metadata, "
            "then a '# grader: exercise=SLUG' line, then the folder's or the file's name)"
        ),
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here (one suite per file)")] = None,
    summary: Annotated[
        Path | None,
        typer.Option(help="Write a Markdown summary here (on GitHub: $GITHUB_STEP_SUMMARY; appended to)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every verdict as JSON on stdout")] = False,
    public_only: Annotated[
        bool, typer.Option("--public-only", help="Only the public tests, no performance phase")
    ] = False,
    sandbox: SandboxOption = None,
) -> None:
    """Grade every file and notebook under PATHS; exit 1 when any did not pass."""
    from grader.exporters import JunitExporter

    state: State = ctx.obj
    files = collect(paths)
    if not files:
        raise CliError(f"no .py or .ipynb files under {', '.join(map(str, paths))}", 2)
    catalog = _catalog(state)
    forced = None
    if exercise is not None:
        forced = catalog.get(exercise) if exercise in catalog.exercises else None
        if forced is None:
            raise CliError(f"unknown exercise {exercise!r}; `grader exercise list` shows them", 2)
    backend = state.backend(sandbox)
    graded: list[Graded] = []
    for number, file in enumerate(files, 1):
        started = time.perf_counter()
        shown = _shown(file)
        target = forced or exercise_for(file, catalog)
        if isinstance(target, str):
            verdict = rejected(file, target)
        else:
            try:
                verdict = grade_file(state, target, file, backend, public_only=public_only)
            except CliError as exc:  # unreadable: that file's verdict, never the batch's end
                verdict = rejected(file, str(exc), target.slug)
        graded.append(Graded(shown, verdict))
        err.print(
            f"[{number}/{len(files)}] {shown}: {verdict.status.label} "
            f"({verdict.provenance.exercise}, {verdict.score:g}/{verdict.max_score:g}) "
            f"in {time.perf_counter() - started:.1f} s"
        )
    verdicts = [g.verdict for g in graded]
    if junit is not None:
        JunitExporter(suite_names=[g.path for g in graded]).write(verdicts, junit)
    if summary is not None:
        text = markdown_summary(graded)
        with summary.open("a", encoding="utf-8") as f:  # a job summary may hold other steps' too
            f.write(text)
    if as_json:
        out.file.write(
            json.dumps([{"path": g.path, **g.verdict.model_dump(mode="json")} for g in graded]) + "\n"
        )
    passed = sum(v.passed for v in verdicts)
    err.print(f"{passed} of {len(verdicts)} passed")
    if passed != len(verdicts):
        raise typer.Exit(1)


def collect(paths: list[Path]) -> list[Path]:
    """The files to grade, in a stable order: named files as given, folders searched for .py and
    .ipynb files (skipping hidden folders, checkpoints and virtual environments)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
                found += [
                    Path(root) / n for n in sorted(names) if n.endswith(SUFFIXES) and not n.startswith(".")
                ]
        elif path.exists():
            found.append(path)
        else:
            raise CliError(f"no such file or folder: {path}", 2)
    unique: dict[Path, None] = {}
    for file in found:
        unique.setdefault(file, None)
    return list(unique)


def exercise_for(file: Path, catalog: Catalog) -> Exercise | str:
    """The exercise a file is for, or why it cannot be told."""
    slugs = catalog.exercises
    why = ""
    try:
        head = file.read_bytes()[: 8 * 1024 * 1024] if file.is_file() else b""
    except OSError:
        head = b""
    named = None
    if file.suffix == ".ipynb":
        try:
            metadata = json.loads(head.decode("utf-8-sig")).get("metadata", {})
            named = metadata.get("grader", {}).get("exercise")
        except (ValueError, AttributeError, RecursionError):
            named = None  # a broken notebook: the folder or the name may still say
            why = _unreadable(head, file.name)
    else:
        match = HEADER_EXERCISE.search(head[:4096])
        named = match.group(1).decode() if match else None
    if isinstance(named, str):
        return slugs[named] if named in slugs else f"{file.name} names an unknown exercise {named!r}"
    for candidate in (file.parent.name, file.stem):
        if candidate in slugs:
            return slugs[candidate]
    by_module = [e for e in slugs.values() if e.spec.entrypoint == file.stem]
    if len(by_module) == 1:
        return by_module[0]
    if why:
        return why
    return (
        f"cannot tell which exercise {file.name} is for: no notebook metadata, no "
        "'# grader: exercise=SLUG' line, and neither its folder nor its name is an exercise; pass --exercise"
    )


def _unreadable(data: bytes, name: str) -> str:
    """Why a notebook cannot be read, when it cannot."""
    from grader.notebooks import read_notebook
    from grader.static import Rejected

    try:
        read_notebook(data, name)
    except Rejected as exc:
        return exc.message
    return ""


def rejected(file: Path, message: str, exercise: str = "(unknown)") -> Verdict:
    """A `rejected` verdict for a file that could not be graded at all."""
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        digest = ""
    return Verdict(
        status=Status.REJECTED,
        summary="not graded: " + message.splitlines()[0],
        message=message,
        provenance=Provenance(
            exercise=exercise,
            exercise_version="",
            submission_sha256=digest,
            graded_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        ),
    )


def markdown_summary(graded: list[Graded]) -> str:
    passed = sum(g.verdict.passed for g in graded)
    lines = [
        f"## Grading: {passed} of {len(graded)} passed",
        "",
        "| | file | exercise | result | score | summary |",
        "|---|---|---|---|---|---|",
    ]
    for g in graded:
        v = g.verdict
        lines.append(
            f"| {MARKS.get(v.status, '❌')} | `{_cell(g.path)}` | {_cell(v.provenance.exercise)} | "
            f"{v.status.label} | {v.score:g}/{v.max_score:g} | {_cell(v.summary)} |"
        )
    for g in graded:
        v = g.verdict
        if v.passed:
            continue
        lines += ["", f"<details><summary>{_html(g.path)}: {_html(v.status.label)}</summary>", ""]
        if v.message:
            lines += ["```text", v.message.replace("```", "'''"), "```", ""]
        for test in v.failing_tests():
            why = test.message.splitlines()[0] if test.message else test.outcome.value
            lines.append(f"- **{_html(test.name)}** ({test.visibility}): {_cell(why)}")
            if test.hint:
                lines.append(f"  - hint: {_cell(test.hint)}")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n\n"


def _catalog(state: State) -> Catalog:
    try:
        return load_catalog(state.settings.exercises_dir, state.settings.solutions_dir, strict=False)
    except CatalogError as exc:
        raise CliError(f"the exercise catalog is invalid: {'; '.join(exc.problems)}", 1) from None


def _shown(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(file)


def _cell(text: str) -> str:
    return _html(text.replace("\n", " ")).replace("|", "\\|").replace("`", "'")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
