"""`grader submit --server`: send a file to a grader server's JSON API and follow its grading.

Only the standard library speaks HTTP here (urllib), so the client needs nothing beyond the
grader package itself. Exit codes are those of `grader grade`: 0 when a verdict came back
(passed or not), 1 for the server's failures or ours (unreachable, too many submissions
waiting, the queue down, a system error), 2 for what the user can fix (a missing or non-UTF-8
file, no server or token, a refused token, an unknown or locked exercise, a file too large).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from grader.cli import render
from grader.cli.app import CliError, app, err, handled, out, read_submission
from grader.events import Event, SubmissionState
from grader.notebooks.reader import NOTEBOOK_MAX_BYTES, is_notebook

MAX_SOURCE = 4 * 1024 * 1024  # a Python file's cap here; the server applies the exercise's own
HTTP_TIMEOUT_S = 30.0
STREAM_READ_S = 20.0  # the server sends a keepalive every 15 s
POLL_S = 1.0
MAX_RESPONSE = 64 * 1024 * 1024
# Refusals the user can act on (exit 2); any other error status is the server's (exit 1).
USER_ERRORS = {400, 401, 403, 404, 413, 422}


@dataclass(frozen=True)
class Api:
    base: str
    token: str

    def url(self, path: str) -> str:
        return self.base + path

    def _request(self, path: str, body: dict[str, Any] | None, accept: str) -> urllib.request.Request:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept, "User-Agent": "grader-cli"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(self.url(path), data=data, headers=headers)

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer to a GET (or a POST of `body`); errors as one clear CliError."""
        try:
            with self._open(self._request(path, body, "application/json"), HTTP_TIMEOUT_S) as response:
                raw = response.read(MAX_RESPONSE)
        except (OSError, HTTPException) as exc:
            raise CliError(f"the server at {self.base} stopped answering: {exc}", 1) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(f"the server at {self.base} did not answer with JSON ({path})", 1) from None

    def stream(self, path: str, timeout: float) -> HTTPResponse:
        return self._open(self._request(path, None, "text/event-stream"), timeout)

    def _open(self, request: urllib.request.Request, timeout: float) -> HTTPResponse:
        try:
            response: HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
            return response
        except urllib.error.HTTPError as exc:
            with exc:
                raise _refusal(exc.code, _detail(exc)) from None
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, OSError) and reason.strerror:
                reason = reason.strerror
            raise CliError(f"cannot reach the server at {self.base}: {reason}", 1) from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read(64 * 1024)).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, list):  # a validation error: [{"loc": [...], "msg": ...}]
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else str(exc.reason)


def _refusal(status: int, detail: str) -> CliError:
    if status == 401:
        return CliError(
            f"the server refused the token: {detail} (create one on your account page or with "
            "POST /api/v1/tokens)",
            2,
        )
    return CliError(f"{detail} (HTTP {status})", 2 if status in USER_ERRORS else 1)


def _source(path: Path) -> str:
    """The file's text, sent as it is: a notebook (.ipynb) is its JSON, read by the server."""
    notebook = is_notebook(path.name)
    limit = NOTEBOOK_MAX_BYTES if notebook else MAX_SOURCE
    raw, size = read_submission(path, limit)
    if size > limit:
        if notebook:
            raise CliError(
                f"{path} is {_mb(size)}; the server takes notebooks of at most {_mb(limit)}. "
                "Clear its outputs (Edit > Clear All Outputs in Jupyter), save it and submit again.",
                2,
            )
        raise CliError(f"{path} is {size} bytes; the server takes at most {MAX_SOURCE}", 2)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        what = (
            "a notebook is a UTF-8 JSON file: save it again from Jupyter" if notebook else "save it as UTF-8"
        )
        raise CliError(f"{path} is not UTF-8 text (byte {exc.start}): {what}", 2) from None


def _mb(n: int) -> str:
    return f"{math.ceil(n * 10 / 1024 / 1024) / 10:g} MB"


@app.command()
@handled
def submit(
    exercise: Annotated[str, typer.Argument(help="Exercise slug, e.g. causal-masking")],
    file: Annotated[Path, typer.Argument(help="Your solution file: a .py, or a notebook (.ipynb)")],
    server: Annotated[
        str | None, typer.Option(envvar="GRADER_SERVER", help="The grader's URL, e.g. http://127.0.0.1:8000")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="GRADER_TOKEN", help="An API token (from your account page)", show_default=False),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the grading and print the verdict")] = False,
    public: Annotated[
        bool,
        typer.Option("--public", help="Only the public tests: quick feedback that never counts as a pass"),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON on stdout (the verdict with --wait)")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds")
    ] = None,
) -> None:
    """Submit FILE for EXERCISE to a grader server; with --wait, print its verdict."""
    if not server:
        raise CliError("name the server: --server URL (or set GRADER_SERVER)", 2)
    if not token:
        raise CliError("give an API token: --token TOKEN (or set GRADER_TOKEN)", 2)
    parsed = urllib.parse.urlsplit(server)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CliError(f"--server must be an http:// or https:// URL, not {server!r}", 2)
    api = Api(server.rstrip("/"), token.strip())
    body = {
        "exercise": exercise,
        "source": _source(file),
        "filename": file.name,
        "kind": "public" if public else "submit",
    }
    row = api.call("/api/v1/submissions", body)
    if not isinstance(row, dict) or not isinstance(row.get("id"), int):
        raise CliError(f"the server at {api.base} answered with no submission id", 1)
    submission_id = row["id"]
    page = api.url(str(row.get("url") or f"/submissions/{submission_id}"))
    (err if as_json else out).print(f"submission {submission_id}: {page}", soft_wrap=True)
    if not wait:
        if as_json:
            sys.stdout.write(json.dumps(row, indent=2) + "\n")
        return
    final = _follow(api, submission_id, timeout, show=err.is_terminal)
    _show(final, page, as_json)


def _follow(api: Api, submission_id: int, timeout: float | None, *, show: bool) -> dict[str, Any]:
    """Wait for the submission to be graded: its event stream, then polling if the stream breaks."""
    with _status(show) as say:
        deadline = None if timeout is None else time.monotonic() + timeout
        _listen(api, submission_id, deadline, say)
        return _poll(api, submission_id, timeout, deadline)


@contextlib.contextmanager
def _status(show: bool) -> Iterator[Callable[[str], None]]:
    """Where the grading stands, on one line of stderr that updates in place (a terminal only)."""
    if not show:
        yield lambda text: None
        return
    with err.status("submitted") as status:
        yield lambda text: status.update(text) if text else None


def _listen(api: Api, submission_id: int, deadline: float | None, say: Callable[[str], None]) -> None:
    remaining = STREAM_READ_S if deadline is None else max(0.1, deadline - time.monotonic())
    try:  # a read that times out (OSError) ends the stream: the deadline is checked by polling
        with api.stream(
            f"/api/v1/submissions/{submission_id}/events", min(STREAM_READ_S, remaining)
        ) as response:
            for kind, data in _events(response):
                if kind == "done" or (deadline is not None and time.monotonic() > deadline):
                    return
                say(_describe_event(kind, data))
    except (CliError, OSError, HTTPException, ValueError):
        pass  # the stream is a courtesy: the submission's own state is the truth


def _poll(api: Api, submission_id: int, timeout: float | None, deadline: float | None) -> dict[str, Any]:
    path = f"/api/v1/submissions/{submission_id}"
    while True:
        row = api.call(path)
        if not isinstance(row, dict):
            raise CliError(f"the server at {api.base} answered {path} with no submission", 1)
        if SubmissionState.is_final(row.get("state")):
            return row
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"submission {submission_id} is still {row.get('state')} after {timeout:g} s", 1)
        time.sleep(POLL_S)


def _events(response: HTTPResponse) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as (event name, JSON data); a keepalive comment as ("comment", {})."""
    kind, data = "message", list[str]()
    while True:
        line = response.readline(1024 * 1024)
        if not line:
            return
        text = line.decode("utf-8").rstrip("\r\n")
        if not text:
            if data:
                payload = json.loads("\n".join(data))
                yield kind, payload if isinstance(payload, dict) else {}
            kind, data = "message", []
        elif text.startswith(":"):
            yield "comment", {}
        elif text.startswith("event:"):
            kind = text[6:].strip()
        elif text.startswith("data:"):
            data.append(text[5:].removeprefix(" "))


def _describe_event(kind: str, data: dict[str, Any]) -> str:
    if kind == "comment":
        return ""
    if kind == "state":
        if data.get("state") == "queued" and data.get("position") is not None:
            return f"queued, {data['position']} ahead"
        return str(data.get("state") or "")
    event = Event.from_dict(data)
    return event.describe() if event is not None else ""


def _show(row: dict[str, Any], page: str, as_json: bool) -> None:
    from grader.verdict import Verdict

    submission_id = row.get("id")
    unlocked = [str(slug) for slug in row.get("unlocked") or []]
    data = row.get("verdict")
    if row.get("state") != "done" or not isinstance(data, dict):
        if as_json:
            sys.stdout.write(json.dumps({"submission": submission_id, "state": row.get("state")}) + "\n")
        raise CliError(
            f"submission {submission_id} failed on the server's side ({row.get('state')}): {page}", 1
        )
    try:
        verdict = Verdict.model_validate(data)
    except ValidationError:
        raise CliError(
            f"the verdict of submission {submission_id} is not one this client reads: {page}", 1
        ) from None
    if as_json:
        sys.stdout.write(
            json.dumps({"submission": submission_id, **data, "unlocked": unlocked}, indent=2) + "\n"
        )
    else:
        render.verdict(out, verdict)
        if unlocked:
            out.print(f"[bold green]unlocked:[/bold green] {', '.join(unlocked)}")
    if not verdict.status.earned:
        raise typer.Exit(1)
