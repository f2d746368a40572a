"""Commands of the queue: `db upgrade`, `enqueue`, `status`, `worker`, `reconcile`.

All of them read DATABASE_URL and REDIS_URL (SQLite in ./var/ and a local Redis by default).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from grader.cli import render
from grader.cli.app import CliError, State, app, err, handled, out, read_submission
from grader.events import Event, SubmissionState
from grader.jobs import RQ_QUEUES

if TYPE_CHECKING:  # the database and Redis clients are imported by the commands that use them
    from grader.store.models import Submission


db_app = typer.Typer(no_args_is_help=True, help="The grader's database.")
app.add_typer(db_app, name="db")


def _engine(state: State) -> Any:
    from grader.store import DatabaseError, make_engine

    try:
        return make_engine(state.settings.database())
    except DatabaseError as exc:
        raise CliError(str(exc), 1) from None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "(unparseable URL)"


def _factory(state: State) -> Any:
    from grader.store import DatabaseError, require_current, sessions

    engine = _engine(state)
    try:
        require_current(engine)
    except DatabaseError as exc:
        raise CliError(str(exc), 1) from None
    return sessions(engine)


def _redis(state: State) -> Any:
    from grader.jobs import queue as jobqueue

    try:
        return jobqueue.connect(state.settings.redis_url)
    except jobqueue.QueueError as exc:
        raise CliError(f"{exc} (set REDIS_URL)", 1) from None


@db_app.command("upgrade")
@handled
def db_upgrade(ctx: typer.Context) -> None:
    """Create the database or bring its schema up to date (safe to run again)."""
    from grader.library import backfill_archives
    from grader.store import DatabaseError, require_current, sessions, upgrade

    state: State = ctx.obj
    engine = _engine(state)
    try:
        upgrade(engine)
        require_current(engine)
    except DatabaseError as exc:
        raise CliError(str(exc), 1) from None
    out.print(f"database up to date: {_safe_url(state.settings.database())}")
    # uploads made before their archives were kept in the database, stored from this host's disk
    problems = backfill_archives(sessions(engine), state.settings.data_dir)
    for problem in problems:
        out.print(f"[yellow]not stored in the database:[/] {problem}; workers on other hosts cannot grade it")


@app.command()
@handled
def enqueue(
    ctx: typer.Context,
    exercise: Annotated[str, typer.Argument(help="Exercise slug")],
    file: Annotated[str, typer.Argument(help="The solution file")],
    user: Annotated[str | None, typer.Option(help="Who submits it (created if new)")] = None,
) -> None:
    """Queue FILE for grading; prints the submission id as the last word."""
    from pathlib import Path

    from grader.jobs import queue as jobqueue
    from grader.jobs import submissions
    from grader.notebooks import submission_limit

    state: State = ctx.obj
    spec = state.exercise(exercise)
    raw, _ = read_submission(Path(file), submission_limit(spec.spec.source_kb, file))
    factory = _factory(state)
    redis = _redis(state)
    row = submissions.create(factory, spec, raw, Path(file).name, user=user)
    assert row.job_id is not None
    position = jobqueue.enqueue(redis, row.queue, row.id, row.attempt, row.job_id)
    ahead = f", {position} ahead" if position else ""
    out.print(f"queued on {row.queue}{ahead}: submission {row.id}")


@app.command()
@handled
def status(
    ctx: typer.Context,
    submission_id: Annotated[int, typer.Argument(metavar="ID", help="Submission id")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is graded")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the verdict once done)")] = False,
) -> None:
    """Show where submission ID stands, or its verdict once graded."""
    from grader.jobs import submissions

    state: State = ctx.obj
    factory = _factory(state)
    row = submissions.get(factory, submission_id)
    if row is None:
        raise CliError(f"no submission {submission_id}", 2)
    if wait:
        row = _wait(state, factory, submission_id, timeout, show=not as_json)
    _show(state, row, as_json)


def _wait(state: State, factory: Any, submission_id: int, timeout: float | None, *, show: bool) -> Submission:
    from redis.exceptions import RedisError

    from grader.jobs import queue as jobqueue
    from grader.jobs import submissions

    deadline = None if timeout is None else time.monotonic() + timeout
    redis = _redis(state)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(jobqueue.channel(submission_id))
    last = ""
    try:
        while True:
            row = submissions.get(factory, submission_id)
            assert row is not None
            if SubmissionState.is_final(row.state):
                return row
            if deadline is not None and time.monotonic() > deadline:
                raise CliError(f"submission {submission_id} is still {row.state} after {timeout:g} s", 1)
            try:
                message = pubsub.get_message(timeout=0.5)
            except RedisError:  # progress is a courtesy: keep waiting on the database
                message = None
                time.sleep(0.5)
            if show and message is not None and err.is_terminal:
                event = Event.from_json(message["data"])
                text = event.describe() if event is not None else ""
                if text and text != last:
                    err.print(f"[dim]{text}[/dim]")
                    last = text
    finally:
        with contextlib.suppress(RedisError):
            pubsub.close()


def _show(state: State, row: Submission, as_json: bool) -> None:
    from grader.jobs import queue as jobqueue
    from grader.verdict import Verdict

    if row.state == "done" and row.verdict is not None:
        if as_json:
            sys.stdout.write(json.dumps({"submission": row.id, **row.verdict}, indent=2) + "\n")
        else:
            render.verdict(out, Verdict.model_validate(row.verdict))
        return
    info: dict[str, Any] = {"submission": row.id, "status": row.state, "attempt": row.attempt}
    if row.state == "system_error":
        info["message"] = row.message
    elif row.state == "queued" and row.job_id:
        try:
            info["position"] = jobqueue.position(_redis(state), row.queue, row.job_id)
        except CliError:
            info["position"] = None
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
    else:
        extra = f": {row.message}" if row.message else ""
        out.print(f"submission {row.id}: {row.state} (attempt {row.attempt}){extra}")


@app.command()
@handled
def worker(
    ctx: typer.Context,
    queue_names: Annotated[
        list[str] | None,
        typer.Option("--queue", help="cpu, gpu or lti (repeatable; default cpu and lti, gpu with --gpu)"),
    ] = None,
    gpu: Annotated[
        int | None, typer.Option("--gpu", metavar="INDEX", help="The one GPU this worker uses")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Stop when the queues are empty")] = False,
    sandbox: Annotated[
        str | None, typer.Option(help="auto (bwrap, else docker), bwrap or docker (env: GRADER_SANDBOX)")
    ] = None,
    fork: Annotated[
        bool,
        typer.Option(
            "--fork", help="Fork per job like RQ's default worker, without a warm pool (to compare)"
        ),
    ] = False,
) -> None:
    """Grade submissions from the queue until stopped (Ctrl-C finishes the current one first)."""
    state: State = ctx.obj
    names = queue_names or (["gpu"] if gpu is not None else ["cpu"])
    for name in names:
        if name not in RQ_QUEUES:
            raise CliError(f"unknown queue {name!r}; choose one of {', '.join(RQ_QUEUES)}", 2)
    from grader.jobs import queue as jobqueue
    from grader.jobs import worker as jobworker
    from grader.store import DatabaseError

    if "gpu" in names and gpu is None:
        raise CliError("a gpu worker needs its device: --gpu INDEX", 2)
    backend = state.backend(sandbox)  # refuses none: workers grade students' code
    _factory(state)  # the schema is current
    state.settings.sandbox = backend.name
    device = f"cuda:{gpu}" if gpu is not None else "cpu"
    try:
        context = jobworker.WorkerContext.from_settings(state.settings, device=device, backend=backend)
    except (DatabaseError, jobqueue.QueueError) as exc:
        raise CliError(str(exc), 1) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(jobworker.device_claim(context, gpu))
        except jobqueue.QueueError as exc:
            raise CliError(str(exc), 1) from None
        err.print(
            f"worker {context.name}: queues {', '.join(names)}, sandbox {backend.name}, device {device}"
        )
        jobworker.run(context, names, burst=burst, fork=fork)


@app.command()
@handled
def reconcile(ctx: typer.Context) -> None:
    """Re-enqueue lost work once (workers also do this on their own, every few seconds)."""
    from grader.jobs import queue as jobqueue
    from grader.jobs import worker as jobworker
    from grader.store import DatabaseError

    state: State = ctx.obj
    backend = state.backend(None)  # the configured one, never none
    try:
        context = jobworker.WorkerContext.from_settings(state.settings, backend=backend)
    except (DatabaseError, jobqueue.QueueError) as exc:
        raise CliError(str(exc), 1) from None
    counts = jobworker.reconcile(context)
    out.print(", ".join(f"{name}: {count}" for name, count in counts.items()))


@app.command()
@handled
def replay(
    ctx: typer.Context,
    submission_id: Annotated[int, typer.Argument(metavar="ID", help="Submission id")],
    gpu: Annotated[
        int | None, typer.Option("--gpu", metavar="INDEX", help="Replay a GPU exercise on this GPU")
    ] = None,
    sandbox: Annotated[
        str | None, typer.Option(help="auto (bwrap, else docker), bwrap or docker (env: GRADER_SANDBOX)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Grade submission ID again from its verdict's receipt (the same exercise version, source and
    seed) and compare: exit 0 when the outcome is the same, 1 when it is not."""
    import json

    from grader.catalog import load_catalog
    from grader.library import Library
    from grader.replay import ReplayError
    from grader.replay import replay as replay_receipt

    state: State = ctx.obj
    factory = _factory(state)
    backend = state.backend(sandbox)  # refuses none: this is students' code
    catalog = load_catalog(state.settings.exercises_dir, state.settings.solutions_dir, strict=False)
    library = Library(catalog, state.settings.data_dir)
    device = f"cuda:{gpu}" if gpu is not None else "cpu"
    try:
        result = replay_receipt(factory, library, backend, submission_id, device=device)
    except ReplayError as exc:
        raise CliError(str(exc), 2) from None
    finally:
        backend.close()
    recorded, replayed = result.recorded, result.replayed
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "submission": submission_id,
                    "agrees": result.agrees,
                    "recorded": {
                        "status": str(recorded.status),
                        "provenance": recorded.provenance.model_dump(),
                    },
                    "replayed": {
                        "status": str(replayed.status),
                        "provenance": replayed.provenance.model_dump(),
                    },
                    "changed_tests": result.changed_tests,
                    "changed_checks": result.changed_checks,
                    "host_differences": result.host_differences,
                }
            )
        )
    else:
        where = recorded.provenance.host or "an unrecorded host"
        out.print(f"recorded: {recorded.status} on {where} (seed {recorded.provenance.seed})")
        out.print(f"replayed: {replayed.status} here, {len(replayed.tests)} test(s)")
        for line in result.changed_tests + result.changed_checks:
            out.print(f"  changed: {line}")
        for line in result.host_differences:
            out.print(f"  host differs: {line}")
        out.print("the same outcome" if result.agrees else "[red]a different outcome[/]")
    if not result.agrees:
        raise typer.Exit(1)
