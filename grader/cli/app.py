"""The `grader` command line.

Exit codes: 0 when a verdict was produced (whatever the student earned), 1 for our own failures
(system error, broken exercise catalog, no usable sandbox, a validation that did not hold),
2 for bad usage (unknown exercise, missing file, bad option).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

from grader.catalog import Catalog, CatalogError, Exercise, UnknownExercise, load_catalog
from grader.cli import render
from grader.events import Event, EventKind, EventSink
from grader.settings import Settings, get_settings
from grader.verdict import Verdict
from sandbox import (
    BACKENDS,
    Limits,
    Sandbox,
    SandboxError,
    SandboxRefused,
    SandboxUnavailable,
    get_backend,
    select_backend,
)
from sandbox.policy import cuda_index

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Grade LLM-engineering exercises in a sandbox."
)
exercise_app = typer.Typer(no_args_is_help=True, help="List, inspect and validate exercises.")
sandbox_app = typer.Typer(no_args_is_help=True, help="Inspect the sandbox backends of this host.")
app.add_typer(exercise_app, name="exercise")
app.add_typer(sandbox_app, name="sandbox")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def handled(fn: F) -> F:
    """Print our errors as one clear message and exit with their code: never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            message = escape(str(exc))  # its own words, never markup
            err.print(f"[bold red]error:[/bold red] {message}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.code) from None

    return wrapper  # type: ignore[return-value]


@dataclass
class State:
    settings: Settings

    @functools.cached_property
    def catalog(self) -> Catalog:
        """Every exercise, all valid (commands about the whole curriculum)."""
        try:
            return load_catalog(self.settings.exercises_dir, self.settings.solutions_dir)
        except CatalogError as exc:
            raise CliError(f"the exercise catalog is invalid:\n{_bullets(exc.problems)}", 1) from None

    def exercise(self, slug: str) -> Exercise:
        """One exercise, which must be valid; problems in other exercises are only a warning."""
        try:
            catalog = load_catalog(self.settings.exercises_dir, self.settings.solutions_dir, strict=False)
            exercise = catalog.get(slug)
        except UnknownExercise as exc:
            raise CliError(str(exc), 2) from None
        except CatalogError as exc:
            raise CliError(f"exercise {slug!r} is invalid:\n{_bullets(exc.problems)}", 1) from None
        others = sorted(set(catalog.broken) - {slug})
        if others:
            err.print(f"[yellow]warning:[/yellow] left out, with problems: {', '.join(others)}")
        return exercise

    def backend(self, name: str | None, *, own_code: bool = False) -> Sandbox:
        """The sandbox named on the command line, else configured. `none` only for a command that
        runs the caller's own code (`own_code`), and only when named on its command line."""
        untrusted = not (own_code and name == "none")
        try:
            backend = select_backend(
                name or self.settings.sandbox, untrusted=untrusted, fork=self.settings.fork_runners
            )
        except SandboxRefused as exc:
            raise CliError(str(exc), 2) from None
        except SandboxUnavailable as exc:
            raise CliError(f"no usable sandbox: {exc}", 1) from None
        if backend.trusted_code_only:
            err.print(
                "[yellow]warning:[/yellow] --sandbox none runs the code unsandboxed: only run your own code"
            )
        return backend


@app.callback()
def main_options(
    ctx: typer.Context,
    exercises_dir: Annotated[
        Path | None, typer.Option(help="Folder of exercise packages (env: GRADER_EXERCISES_DIR)")
    ] = None,
    solutions_dir: Annotated[
        Path | None, typer.Option(help="Folder of solutions (env: GRADER_SOLUTIONS_DIR)")
    ] = None,
) -> None:
    settings = get_settings()
    if exercises_dir is not None:
        settings.exercises_dir = exercises_dir
    if solutions_dir is not None:
        settings.solutions_dir = solutions_dir
    ctx.obj = State(settings)


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"  - {line}" for line in lines)


SandboxOption = Annotated[
    str | None,
    typer.Option("--sandbox", help="auto (bwrap, else docker), bwrap or docker (env: GRADER_SANDBOX)"),
]
OwnCodeSandboxOption = Annotated[
    str | None,
    typer.Option(
        "--sandbox",
        help="auto (bwrap, else docker), bwrap, docker, or none (only your own solutions) "
        "(env: GRADER_SANDBOX)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the verdict as JSON on stdout")]
JunitOption = Annotated[Path | None, typer.Option(help="Also write JUnit XML here")]


@app.command()
@handled
def grade(
    ctx: typer.Context,
    exercise: Annotated[str, typer.Argument(help="Exercise slug, e.g. causal-masking")],
    file: Annotated[Path, typer.Argument(help="Your solution file")],
    as_json: JsonOption = False,
    junit: JunitOption = None,
    gradescope: Annotated[Path | None, typer.Option(help="Also write a Gradescope results.json here")] = None,
    sandbox: SandboxOption = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed for the tests' inputs (default: a fresh one, shown in the verdict)"),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="GPU for GPU exercises: cuda:N (env: GRADER_DEVICE)")
    ] = None,
) -> None:
    """Grade FILE against every test of EXERCISE, performance included."""
    _grade(
        ctx.obj,
        exercise,
        file,
        as_json=as_json,
        junit=junit,
        gradescope=gradescope,
        sandbox=sandbox,
        seed=seed,
        public_only=False,
        device=device,
    )


@app.command()
@handled
def test(
    ctx: typer.Context,
    exercise: Annotated[str, typer.Argument(help="Exercise slug")],
    file: Annotated[Path, typer.Argument(help="Your solution file")],
    as_json: JsonOption = False,
    sandbox: SandboxOption = None,
) -> None:
    """Run only the public tests of EXERCISE on FILE: quick feedback, no performance phase."""
    _grade(
        ctx.obj,
        exercise,
        file,
        as_json=as_json,
        junit=None,
        gradescope=None,
        sandbox=sandbox,
        seed=None,
        public_only=True,
        device=None,
    )


def _grade(
    state: State,
    slug: str,
    file: Path,
    *,
    as_json: bool,
    junit: Path | None,
    gradescope: Path | None,
    sandbox: str | None,
    seed: int | None,
    public_only: bool,
    device: str | None,
) -> None:
    from grader.exporters import GradescopeExporter, JunitExporter

    exercise = state.exercise(slug)
    backend = state.backend(sandbox)
    result = grade_file(state, exercise, file, backend, public_only=public_only, seed=seed, device=device)
    if junit is not None:
        JunitExporter().write([result], junit)
    if gradescope is not None:
        GradescopeExporter().write([result], gradescope)
    show(result, as_json=as_json)


def show(result: Verdict, *, as_json: bool) -> None:
    """The verdict on stdout (as JSON, or drawn); exit 1 when it is our own failure."""
    from grader.exporters import JsonExporter

    if as_json:
        sys.stdout.write(JsonExporter().render([result]))
    else:
        render.verdict(out, result)
    if not result.status.earned:
        raise typer.Exit(1)


def grade_file(
    state: State,
    exercise: Exercise,
    file: Path,
    backend: Sandbox,
    *,
    public_only: bool = False,
    seed: int | None = None,
    device: str | None = None,
) -> Verdict:
    """Grade one file (a module or a notebook) with a progress bar on a terminal."""
    from grader.engine import grade as run_grade
    from grader.notebooks import submission_limit

    raw, size = read_submission(file, submission_limit(exercise.spec.source_kb, file.name))
    device = device or state.settings.device
    try:
        cuda_index(device)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    with progress() as events, contextlib.redirect_stdout(sys.stderr):
        return run_grade(
            exercise,
            raw,
            backend,
            public_only=public_only,
            measure=not public_only,
            seed=seed,
            events=events,
            filename=file.name,
            size=size,
            device=device,
        )


def read_submission(path: Path, limit: int) -> tuple[bytes, int]:
    """The file's bytes (no more than limit + 1 of them) and its real size."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise CliError(f"{path} is not a file", 2)
        with path.open("rb") as f:
            return f.read(limit + 1), size
    except FileNotFoundError:
        raise CliError(f"no such file: {path}", 2) from None
    except PermissionError:
        raise CliError(f"cannot read {path}: permission denied", 2) from None


@contextlib.contextmanager
def progress() -> Iterator[EventSink]:
    """One grading's events on stderr: a live line on a terminal, nothing elsewhere."""
    with steps("grading") as (_, events):
        yield events


Step = Callable[[str, int, int], None]


@contextlib.contextmanager
def steps(verb: str, *, pairs_every: int = 0) -> Iterator[tuple[Step, EventSink]]:
    """Progress on stderr of a command that grades several files: `step(subject, k, n)` says which
    one now ("checking wrong/loop (5 of 14)"), and the sink takes its grading's events. On a
    terminal, one live line; elsewhere a line per step and, with `pairs_every`, one every so many
    measured pairs."""
    if not err.is_terminal:

        def say(subject: str, k: int, n: int) -> None:
            err.print(f"{verb} {subject} ({k} of {n})", soft_wrap=True)

        def note(event: Event) -> None:
            if pairs_every and event.kind is EventKind.PERFORMANCE and event.total:
                if event.current % pairs_every == 0 or event.current == event.total:
                    err.print(f"  {event.message} of {event.total}", soft_wrap=True)

        yield say, note
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(verb, total=None)
        now = [verb]

        def step(subject: str, k: int, n: int) -> None:
            now[0] = f"{verb} {subject} ({k} of {n})"
            bar.update(task, description=now[0], completed=0, total=None)

        def on_event(event: Event) -> None:
            what = event.message or event.describe()
            description = f"{now[0]}: {what}" if what else now[0]
            bar.update(task, description=description, completed=event.current, total=event.total or None)

        yield step, on_event


@exercise_app.command("list")
@handled
def list_exercises(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the curriculum as JSON")] = False,
) -> None:
    """Tracks and concepts, in curriculum order, with their prerequisites."""
    cat: Catalog = ctx.obj.catalog
    if as_json:
        fields = {"id", "title", "summary", "level", "minutes", "tier", "resources", "prerequisites"}
        data = [
            {
                "track": track.model_dump(),
                "concepts": [{**e.spec.model_dump(include=fields), "version": e.version} for e in exercises],
            }
            for track, exercises in cat.by_track()
        ]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    render.catalog(out, cat)


@exercise_app.command("validate")
@handled
def validate(
    ctx: typer.Context,
    exercise: Annotated[str | None, typer.Argument(help="Exercise slug (or --all)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Validate every exercise")] = False,
    sandbox: OwnCodeSandboxOption = None,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            max=100,
            help="Also check the reference's correctness on seeds 1 .. N-1 (the tests' inputs change with "
            "the seed; every grading draws a fresh one)",
        ),
    ] = 1,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=64,
            help="With --all: exercises validated at once, each in a process of its own "
            "(default: the CPUs, at most 4)",
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Keep the reports that hold here, and skip a version (files, grader code, sandbox, seeds) "
            "validated before (env: GRADER_VALIDATION_CACHE)"
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="GPU for GPU exercises: cuda:N (env: GRADER_DEVICE)")
    ] = None,
    gpu_only: Annotated[
        bool, typer.Option("--gpu-only", help="With --all: only the exercises that declare a GPU")
    ] = False,
) -> None:
    """Prove the hidden tests work: the reference passes, the skeleton fails, and every wrong/
    variant gets exactly its declared verdict."""
    from grader.validate import validate_cached, validate_in_parallel

    state: State = ctx.obj
    if (exercise is None) == (not all_):
        raise CliError("name one EXERCISE or pass --all", 2)
    targets = list(state.catalog) if all_ else [state.exercise(exercise or "")]
    if gpu_only:
        targets = [t for t in targets if t.spec.resources == "gpu"]
    where = device or state.settings.device
    try:
        cuda_index(where)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    backend = state.backend(sandbox, own_code=True)
    cache = cache or state.settings.validation_cache
    workers = min(jobs or min(os.cpu_count() or 1, 4), len(targets))
    failures = 0
    started = time.monotonic()
    if workers > 1:
        backend.close()  # each process selects its own
        err.print(f"validating {len(targets)} exercises, {workers} at a time")

        def started_check(slug: str, subject: str, k: int, n: int) -> None:
            err.print(f"[dim]{slug}: checking {subject} ({k} of {n})[/dim]", soft_wrap=True)

        runs = validate_in_parallel(
            targets,
            backend.name,
            fork=state.settings.fork_runners,
            jobs=workers,
            seeds=seeds,
            cache=cache,
            on_start=started_check,
            device=where,
        )
        for done, (target, result) in enumerate(runs, 1):
            if isinstance(result, BaseException):
                failures += 1
                out.print(f"[red]FAIL[/red] {target.slug}: validation could not run: {result}")
                continue
            for check in result:
                render.check(out, check)
            failures += sum(not c.ok for c in result)
            err.print(
                f"[dim][{done}/{len(targets)}] {target.slug} in {time.monotonic() - started:.0f} s[/dim]"
            )
    else:
        for target in targets:
            with steps(f"{target.slug}: checking" if all_ else "checking") as (step, events):
                checks = validate_cached(
                    target,
                    backend,
                    cache,
                    events=events,
                    on_check=lambda c: render.check(out, c),
                    seeds=seeds,
                    on_start=step,
                    device=where,
                )
            failures += sum(not c.ok for c in checks)
    if failures:
        raise CliError(f"{failures} validation check(s) did not hold", 1)
    out.print(f"[green]all {len(targets)} exercise(s) valid[/green] in {time.monotonic() - started:.0f} s")


@exercise_app.command("calibrate")
@handled
def calibrate(
    ctx: typer.Context,
    exercise: Annotated[str, typer.Argument(help="Exercise slug")],
    sandbox: OwnCodeSandboxOption = None,
    pairs: Annotated[
        int | None,
        typer.Option(
            "--pairs",
            min=5,
            max=1001,
            help="Pairs per measurement (default: each check's max_pairs); fewer are measured when the "
            "check's budget_seconds runs out, or when more could not change the proposal",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibration as JSON on stdout")] = False,
) -> None:
    """Measure, on this machine, the reference against itself and every wrong/ variant that expects
    too_slow against the reference, on each time check of EXERCISE; propose a threshold that
    separates them with a margin, and say whether the current one does."""
    from grader.calibrate import NotCalibratable, slow_variants, time_checks
    from grader.calibrate import calibrate as measure

    state: State = ctx.obj
    target = state.exercise(exercise)
    if not time_checks(target):
        raise CliError(
            f"{target.slug} has no time check to calibrate "
            '(a [performance.<name>] in exercise.toml with metric = "time" and no sizes)',
            2,
        )
    backend = state.backend(sandbox, own_code=True)
    try:
        with steps("measuring", pairs_every=10) as (step, events):
            result = measure(target, backend, pairs=pairs, events=events, on_subject=step)
    except NotCalibratable as exc:
        raise CliError(str(exc), 2) from None
    finally:
        backend.close()
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        render.calibration(out, result)
    if result.unmeasured:
        raise CliError(f"the reference could not be measured on: {', '.join(result.unmeasured)}", 1)
    if result.without_slow_variants:
        why = (
            "none of its too_slow variants is caught by a test that measures a time check"
            if slow_variants(target)
            else "no wrong/ variant expects too_slow"
        )
        raise CliError(
            f"{target.slug}: {why}, so there is nothing to separate the reference from; it was measured "
            "against itself only (add a slow variant: '# expect: too_slow', '# caught-by: <test>')",
            2,
        )
    if result.unseparated:
        checks = ", ".join(result.unseparated)
        raise CliError(f"no threshold separates the reference from the slow variants on: {checks}", 1)


@exercise_app.command("new")
@handled
def new_exercise(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The new exercise's slug, e.g. layer-norm")],
    title: Annotated[str | None, typer.Option(help="Its title (default: made of the slug)")] = None,
    track: Annotated[
        str | None, typer.Option(help="A track id from tracks.toml (default: the first one)")
    ] = None,
    level: Annotated[int, typer.Option(min=1, max=5, help="1 (first steps) .. 5 (hard)")] = 1,
    minutes: Annotated[int, typer.Option(min=1, max=600, help="Typical time to solve")] = 30,
) -> None:
    """Scaffold a new exercise package: lesson, settings, skeleton, public and hidden tests, a
    reference solution and a known-wrong variant, which `grader exercise validate SLUG` passes
    as written. Never overwrites anything."""
    import shlex

    from grader.authoring import ScaffoldError, scaffold

    settings: Settings = ctx.obj.settings
    try:
        done = scaffold(
            slug,
            settings.exercises_dir,
            settings.solutions_dir,
            title=title,
            track=track,
            level=level,
            minutes=minutes,
        )
    except ScaffoldError as exc:
        raise CliError(str(exc), 2) from None
    out.print(f"created exercise [bold]{done.slug}[/bold] in track {escape(done.track)}:")
    for path, role in done.files:
        out.print(f"  {escape(str(path))}" + (f"  [dim]{escape(role)}[/dim]" if role else ""), soft_wrap=True)
    fields, where = Settings.model_fields, ""
    if (settings.exercises_dir, settings.solutions_dir) != (
        fields["exercises_dir"].default,
        fields["solutions_dir"].default,
    ):
        folders = (shlex.quote(str(settings.exercises_dir)), shlex.quote(str(settings.solutions_dir)))
        where = " --exercises-dir {} --solutions-dir {}".format(*folders)
    out.print("next:")
    out.print("  1. edit the files: every place to replace is marked TEMPLATE")
    out.print(f"  2. grader{escape(where)} exercise validate {done.slug}", soft_wrap=True)


@sandbox_app.command("check")
@handled
def sandbox_check() -> None:
    """Which sandbox backends work on this host, and how limits are enforced."""
    from sandbox import cgroups
    from sandbox.uids import UidPool

    for name in BACKENDS:
        try:
            get_backend(name).check()
            out.print(f"[green]ok[/green]   {name}")
        except SandboxUnavailable as exc:
            out.print(f"[red]no[/red]   {name}: {exc}")
    forking = get_backend("bwrap", fork=True)
    try:
        started = time.perf_counter()
        forking.check()
        up = time.perf_counter() - started
        started = time.perf_counter()
        forking.start(Limits()).close()
        out.print(
            f"[green]ok[/green]   bwrap with forked runners (fork server up in {up:.2f} s, "
            f"a runner forked in {1000 * (time.perf_counter() - started):.0f} ms)"
        )
    except SandboxError as exc:
        out.print(f"[red]no[/red]   bwrap with forked runners: {exc} (GRADER_FORK_RUNNERS=0 turns them off)")
    finally:
        forking.close()
    try:
        out.print(f"auto: {select_backend('auto', untrusted=True).name}")
    except SandboxUnavailable as exc:
        out.print(f"[red]auto: {exc}[/red]")
    kind, _ = cgroups.discover()
    if kind:
        out.print(f"cgroups: {kind} (memory, pids and CPU limits; CPU time and peak memory read outside)")
    else:
        out.print("cgroups: none usable; limits fall back to rlimits (no CPU cap), clocks to /proc")
    pool = UidPool.from_env()
    out.print(f"sandbox uids: {pool.first}..{pool.last}, one per live runner (locks in {pool.directory})")


@sandbox_app.command("build")
@handled
def sandbox_build(
    image: Annotated[str | None, typer.Option(help="Image name (env: GRADER_DOCKER_IMAGE)")] = None,
) -> None:
    """Build the Docker runtime image on this host, with no registry: an image of mount points
    into which the host's Python, torch and runner are bound read-only. (Production images are
    built from sandbox/images/ with `docker build`.)"""
    from sandbox.docker import DEFAULT_IMAGE, DockerSandbox, build_host_image

    name = image or os.environ.get("GRADER_DOCKER_IMAGE", DEFAULT_IMAGE)
    try:
        image_id = build_host_image(name)
        DockerSandbox(name).check()
    except SandboxError as exc:
        raise CliError(f"cannot build {name}: {exc}", 1) from None
    out.print(f"built {name} ({image_id[:19]})")


def main() -> None:
    app()
