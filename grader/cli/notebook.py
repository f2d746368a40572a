"""Notebook commands: `grader notebook release|grade|gradebook` and `grader exercise import-notebook`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from grader.cli.app import (
    CliError,
    JsonOption,
    JunitOption,
    SandboxOption,
    State,
    app,
    err,
    exercise_app,
    grade_file,
    handled,
    out,
    show,
)
from grader.verdict import Verdict

notebook_app = typer.Typer(
    no_args_is_help=True, help="Jupyter notebooks in nbgrader's format: release, grade, gradebook."
)
app.add_typer(notebook_app, name="notebook")


@exercise_app.command("import-notebook")
@handled
def import_notebook(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="The instructor's nbgrader source notebook")],
    slug: Annotated[
        str | None, typer.Option(help="The exercise's slug (default: metadata, then file name)")
    ] = None,
    track: Annotated[str | None, typer.Option(help="The track it belongs to (added if new)")] = None,
    force: Annotated[bool, typer.Option(help="Replace an exercise of the same slug")] = False,
) -> None:
    """Make an exercise package of an nbgrader source notebook: the lesson from its Markdown, the
    skeleton from its cleared solution cells, public tests from its visible test cells, and the
    reference solution and hidden tests into the solutions folder."""
    from grader.notebooks.importer import ImportProblem
    from grader.notebooks.importer import import_notebook as run_import

    state: State = ctx.obj
    try:
        done = run_import(
            source,
            state.settings.exercises_dir,
            state.settings.solutions_dir,
            slug=slug,
            track=track,
            force=force,
        )
    except ImportProblem as exc:
        raise CliError(str(exc), 2) from None
    out.print(f"imported [bold]{done.slug}[/bold]: {done.exercise_dir} and {done.solution_dir}")
    out.print(f"  {done.public_tests} public test cell(s), {done.hidden_tests} with hidden tests")
    if done.track_added:
        out.print(f"  added its track to {state.settings.exercises_dir / 'tracks.toml'}")
    out.print(
        f"next: add known-wrong answers under {done.solution_dir / 'wrong'} (optional), then "
        f"`grader exercise validate {done.slug}`"
    )


@notebook_app.command("release")
@handled
def release(
    ctx: typer.Context,
    exercise: Annotated[str, typer.Argument(help="Exercise slug")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write it (default: ./SLUG.ipynb; - for stdout)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file")] = False,
) -> None:
    """Write the student notebook of EXERCISE: the lesson, the skeleton as solution cells, and
    the public tests as locked cells."""
    from grader.notebooks.release import notebook_bytes

    state: State = ctx.obj
    target = state.exercise(exercise)
    data = notebook_bytes(target)
    if output is not None and str(output) == "-":
        sys.stdout.write(data.decode("utf-8"))
        return
    path = output or Path(f"{target.slug}.ipynb")
    if path.is_dir():
        path = path / f"{target.slug}.ipynb"
    if path.exists() and not force:
        raise CliError(f"{path} exists (a student's work?); pass --force to overwrite it", 2)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", 1) from None
    out.print(f"wrote {path}")


@notebook_app.command("grade")
@handled
def grade(
    ctx: typer.Context,
    exercise: Annotated[str, typer.Argument(help="Exercise slug")],
    notebook: Annotated[Path, typer.Argument(help="The student's notebook")],
    as_json: JsonOption = False,
    feedback: Annotated[
        Path | None, typer.Option(help="Write feedback here: a notebook (.ipynb) or a page (.html)")
    ] = None,
    junit: JunitOption = None,
    gradebook: Annotated[
        str | None, typer.Option(help="Also record the grade in this nbgrader gradebook (a database URL)")
    ] = None,
    student: Annotated[str | None, typer.Option(help="The student's id in the gradebook")] = None,
    sandbox: SandboxOption = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the tests' inputs")] = None,
) -> None:
    """Grade NOTEBOOK's solution cells against every test of EXERCISE, in the sandbox. Test cells
    in the notebook are never used: the exercise's own tests grade."""
    from grader.exporters import JunitExporter

    state: State = ctx.obj
    if gradebook and not student:
        raise CliError("--gradebook needs --student (the student's id in the gradebook)", 2)
    if feedback is not None and feedback.suffix.lower() not in (".ipynb", ".html"):
        raise CliError("--feedback must name an .ipynb or an .html file", 2)
    target = state.exercise(exercise)
    backend = state.backend(sandbox)
    result = grade_file(state, target, notebook, backend, seed=seed)
    if feedback is not None:
        write_feedback(notebook, result, feedback)
    if junit is not None:
        JunitExporter().write([result], junit)
    if gradebook and student:
        export_one(gradebook, student, result)
    show(result, as_json=as_json)


def write_feedback(notebook: Path, verdict: Verdict, path: Path) -> None:
    """The feedback notebook or page for `notebook`; when the notebook itself cannot be read, a
    feedback notebook of the verdict alone."""
    import nbformat

    from grader.notebooks import read_notebook
    from grader.notebooks.feedback import feedback_html, feedback_notebook
    from grader.static import Rejected

    try:
        source = read_notebook(notebook.read_bytes(), notebook.name)
    except (Rejected, OSError):
        source = nbformat.v4.new_notebook()
    result = feedback_notebook(source, verdict)
    text = (
        feedback_html(result) if path.suffix.lower() == ".html" else nbformat.writes(result, version=4) + "\n"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", 1) from None
    err.print(f"feedback written to {path}")


def export_one(url: str, student: str, verdict: Verdict) -> None:
    from grader.notebooks.gradebook import GradebookError, GradeRecord, export_grades

    try:
        report = export_grades(
            url, [GradeRecord(student_id=student, exercise=verdict.provenance.exercise, verdict=verdict)]
        )
    except GradebookError as exc:
        raise CliError(str(exc), 1) from None
    for reason in report.skipped:
        err.print(f"[yellow]not recorded in the gradebook:[/yellow] {reason}")


@notebook_app.command("gradebook")
@handled
def gradebook(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Argument(help="The nbgrader gradebook's database URL, e.g. sqlite:///gradebook.db")
    ],
    exercise: Annotated[
        list[str] | None, typer.Option("--exercise", help="Only these exercises (repeat the option)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was exported as JSON")] = False,
) -> None:
    """Export the cohort's grades (each student's best graded submission per exercise) from this
    grader's database into an nbgrader gradebook, where formgrader shows them. Safe to run again."""
    from grader.cli.queue import _factory
    from grader.notebooks.gradebook import GradebookError, export_grades, records_from_store

    state: State = ctx.obj
    if "://" not in url:
        path = Path(url).resolve()
        url = f"sqlite:///{path}"
    records = records_from_store(_factory(state), exercise or None)
    try:
        report = export_grades(url, records)
    except GradebookError as exc:
        raise CliError(str(exc), 1) from None
    if as_json:
        sys.stdout.write(json.dumps(vars(report), indent=2) + "\n")
        return
    out.print(
        f"exported {report.grades} grade(s) of {report.students} student(s) in {report.assignments} "
        f"assignment(s) to {url}"
    )
    for reason in report.skipped:
        err.print(f"[yellow]skipped:[/yellow] {reason}")
