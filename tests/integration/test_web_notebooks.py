"""Notebook submissions through the web app, the API and `grader submit --server`: the student
notebook downloaded from a concept, answered in its solution cells, uploaded and graded as the
module its cells make; the pages show that module, never the notebook's JSON; the limits depend
on the file name; a locked concept's notebook is refused like a submission to it.

Grading is real (a worker's grading function, called in this process, in bubblewrap) and uses
causal-masking, the quickest concept of the curriculum to grade.
"""

from __future__ import annotations

import ast
import contextlib
import html
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nbformat import v4

from grader.jobs import worker
from grader.notebooks import NOTEBOOK_MAX_BYTES, module_from_notebook
from grader.notebooks.release import mark_cell
from grader.store import Submission
from tests.integration.web_fixtures import (
    ROOT,
    Person,
    World,
    client,
    leaks,
    log_in,
    secret_lines,
)

SLUG = "causal-masking"
LOCKED = "rope"  # needs causal-masking: locked for a student who has not passed it
SOLUTION = (ROOT / "solutions" / SLUG / "solution.py").read_text()
WRONG = (ROOT / "solutions" / SLUG / "wrong" / "diagonal_excluded.py").read_text()
GRADER = str(Path(sys.executable).with_name("grader"))
NOTEBOOK_TYPE = "application/x-ipynb+json"


@pytest.fixture
def grading(world: World) -> Iterator[worker.WorkerContext]:
    """A worker's context in this process: a submission is graded by calling the worker."""
    ctx = worker.WorkerContext.from_settings(world.settings)
    yield ctx
    ctx.backend.close()
    ctx.factory.kw["bind"].dispose()


def logged_in(world: World, who: Person) -> tuple[TestClient, str]:
    c = client(world.app)
    return c, log_in(c, who)


# --- notebooks -------------------------------------------------------------------------------


def solution_cell(source: str, grade_id: str) -> Any:
    return mark_cell(v4.new_code_cell(source), grade_id, solution=True)


def own_notebook(answer: str, *, extra: list[Any] | None = None) -> Any:
    """A notebook written by hand: a lesson cell, the answer in one solution cell, scratch work."""
    return v4.new_notebook(
        cells=[
            v4.new_markdown_cell("# Causal masking\n\nMy attempt."),
            solution_cell(answer, "answer"),
            v4.new_code_cell("print(causal_mask(2, 3))"),
            *(extra or []),
        ]
    )


def ipynb(notebook: Any) -> bytes:
    return nbformat.writes(notebook, version=4).encode("utf-8")


def answered(notebook: Any, solution: str) -> Any:
    """The released notebook with its solution cells answered from `solution`: a cell that defines
    a function gets the solution's version of it, the other solution cells its imports and
    constants (with a notebook-only line, as a learner's notebook often has)."""
    tree = ast.parse(solution)
    defs = {
        node.name: ast.get_source_segment(solution, node) or ""
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    first = min(node.lineno for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef))
    header = "".join(solution.splitlines(keepends=True)[: first - 1])
    for cell in notebook.cells:
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        names = [n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        cell.source = "\n\n".join(defs[n] for n in names) if names else "%matplotlib inline\n" + header
    return notebook


def graded(world: World, submission_id: int) -> Submission:
    with world.factory() as session:
        row = session.get(Submission, submission_id)
        assert row is not None
        session.expunge(row)
        return row


def submission_id_of(response: Any) -> int:
    assert response.status_code == 303, response.text[-3000:]
    return int(response.headers["location"].rsplit("/", 1)[1])


def editor_text(page: str) -> str:
    found = re.search(r'<textarea[^>]*id="editor"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    assert found is not None, "no editor on the concept page"
    return html.unescape(found.group(1))


# --- downloading -------------------------------------------------------------------------------


def test_the_concept_notebook_downloads_as_a_valid_nbgrader_notebook(world: World) -> None:
    ada, _ = logged_in(world, world.student)
    page = ada.get(f"/concepts/{SLUG}").text
    assert f'href="/concepts/{SLUG}/notebook"' in page and "Download as notebook" in page
    assert 'accept=".py,.ipynb"' in page and "upload the .ipynb here" in page

    response = ada.get(f"/concepts/{SLUG}/notebook")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(NOTEBOOK_TYPE)
    assert response.headers["content-disposition"] == f'attachment; filename="{SLUG}.ipynb"'
    notebook = nbformat.reads(response.text, as_version=4)
    nbformat.validate(notebook)
    solutions = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions and all(c.cell_type == "code" for c in solutions)
    skeleton = world.web.exercise(SLUG).skeleton.read_text()
    assert "def causal_mask(" in "".join(c.source for c in solutions) and "def causal_mask(" in skeleton
    assert leaks(response.text, secret_lines()) == []  # the public half of the exercise only

    api = client(world.app).get(f"/api/v1/concepts/{SLUG}/notebook", headers=world.student.bearer)
    assert api.status_code == 200
    same = nbformat.reads(api.text, as_version=4)
    assert [c.source for c in same.cells] == [c.source for c in notebook.cells]
    assert api.headers["content-disposition"] == f'attachment; filename="{SLUG}.ipynb"'
    assert client(world.app).get(f"/api/v1/concepts/{SLUG}/notebook").status_code == 401
    anonymous = client(world.app).get(f"/concepts/{SLUG}/notebook")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")


def test_a_locked_concepts_notebook_is_refused_like_submitting(world: World) -> None:
    ada, token = logged_in(world, world.student)
    page = ada.get(f"/concepts/{LOCKED}").text
    assert 'id="locked-reason"' in page and f"/concepts/{LOCKED}/notebook" not in page
    response = ada.get(f"/concepts/{LOCKED}/notebook")
    assert response.status_code == 403
    assert "is locked: pass causal-masking first" in html.unescape(response.text)
    assert "nbformat" not in response.text
    submitted = ada.post(
        f"/concepts/{LOCKED}/submissions",
        data={"csrf": token, "kind": "submit"},
        files={"file": ("rope.ipynb", ipynb(own_notebook("x = 1")), NOTEBOOK_TYPE)},
    )
    assert submitted.status_code == 303 and submitted.headers["location"] == f"/concepts/{LOCKED}"
    assert "is locked: pass causal-masking first" in html.unescape(ada.get(f"/concepts/{LOCKED}").text)
    api = client(world.app).get(f"/api/v1/concepts/{LOCKED}/notebook", headers=world.student.bearer)
    assert api.status_code == 403 and "is locked: pass causal-masking first" in api.json()["detail"]
    assert (
        client(world.app).get("/api/v1/concepts/no-such/notebook", headers=world.student.bearer).status_code
        == 404
    )


# --- submitting and grading ----------------------------------------------------------------------


@pytest.mark.sandbox
@pytest.mark.slow
def test_the_downloaded_notebook_answered_and_uploaded_is_graded_as_its_module(
    world: World, grading: worker.WorkerContext
) -> None:
    ada, token = logged_in(world, world.student)
    notebook = nbformat.reads(ada.get(f"/concepts/{SLUG}/notebook").text, as_version=4)
    notebook = answered(notebook, SOLUTION)
    tests = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    tests[0].source = "assert False, 'a test cell edited by the learner'"  # changes nothing
    notebook.cells.append(v4.new_code_cell("scaled_dot_product_attention  # scratch work"))
    raw = ipynb(notebook)
    solution_numbers = [
        i for i, c in enumerate(notebook.cells, 1) if c.metadata.get("nbgrader", {}).get("solution")
    ]

    posted = ada.post(
        f"/concepts/{SLUG}/submissions",
        data={"csrf": token, "kind": "submit", "source": ""},
        files={"file": ("mine.ipynb", raw, NOTEBOOK_TYPE)},
    )
    submission_id = submission_id_of(posted)
    row = graded(world, submission_id)
    assert row.filename == "mine.ipynb" and row.source == raw and row.kind == "submit"

    assert worker.grade_attempt(grading, submission_id, 1) == "passed"
    row = graded(world, submission_id)
    assert row.status == "passed" and row.verdict is not None
    recorded = row.verdict["notebook"]
    assert recorded["filename"] == "mine.ipynb" and recorded["module"] == "attention.py"
    assert recorded["mode"] == "nbgrader"
    assert [c["number"] for c in recorded["cells"]] == solution_numbers
    assert any("%matplotlib inline" in note for note in recorded["notes"])

    extraction = module_from_notebook(raw, world.web.exercise(SLUG), "mine.ipynb")
    page = ada.get(f"/submissions/{submission_id}").text
    text = html.unescape(page)
    assert 'id="verdict-status">Passed<' in page
    assert "The graded module, made from cells" in text
    made_from = re.sub(r"\s+", " ", text[text.index("made from cells") :][:300])
    assert made_from.startswith(
        "made from cells " + ", ".join(f"{c['number']} ({c['grade_id']})" for c in recorded["cells"])
    )
    assert 'id="notebook-cells"' in page and 'id="notebook-notes"' in page
    assert extraction.source in text  # the module that was graded, as the learner reads it
    assert '"cell_type"' not in text and '"nbformat"' not in text  # never the notebook's JSON

    concept = ada.get(f"/concepts/{SLUG}").text
    assert editor_text(concept) == extraction.source  # the editor starts from the graded module
    assert '"cell_type"' not in html.unescape(concept)


@pytest.mark.sandbox
@pytest.mark.slow
def test_notebook_json_through_the_api_gets_the_verdict_its_module_deserves(
    world: World, grading: worker.WorkerContext
) -> None:
    headers = world.student.bearer
    api = client(world.app)
    detail = api.get(f"/api/v1/concepts/{SLUG}", headers=headers).json()
    assert detail["notebook_limit_bytes"] == NOTEBOOK_MAX_BYTES

    outcomes = {}
    for name, answer in (("right.ipynb", SOLUTION), ("wrong.ipynb", WRONG)):
        created = api.post(
            "/api/v1/submissions",
            json={"exercise": SLUG, "source": ipynb(own_notebook(answer)).decode(), "filename": name},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        outcomes[name] = worker.grade_attempt(grading, created.json()["id"], 1)
        body = api.get(f"/api/v1/submissions/{created.json()['id']}", headers=headers).json()
        assert body["status"] == outcomes[name]
        assert body["verdict"]["notebook"]["module"] == "attention.py"
        assert [c["number"] for c in body["verdict"]["notebook"]["cells"]] == [2]  # the solution cell
    assert outcomes == {"right.ipynb": "passed", "wrong.ipynb": "failed"}

    # a notebook whose solution cell does not parse: rejected, with the cell named
    broken = own_notebook("def causal_mask(n_q, n_k:\n    pass")
    created = api.post(
        "/api/v1/submissions",
        json={"exercise": SLUG, "source": ipynb(broken).decode(), "filename": "broken.ipynb"},
        headers=headers,
    ).json()
    assert worker.grade_attempt(grading, created["id"], 1) == "rejected"
    verdict = api.get(f"/api/v1/submissions/{created['id']}", headers=headers).json()["verdict"]
    assert "cell 2 (answer)" in verdict["message"]
    ada, _ = logged_in(world, world.student)
    page = html.unescape(ada.get(f"/submissions/{created['id']}").text)
    assert 'id="notebook-problem"' in page and "cell 2 (answer)" in page
    # the editor never starts from a notebook that cannot be read: the skeleton instead
    skeleton = world.web.exercise(SLUG).skeleton.read_text()
    assert editor_text(ada.get(f"/concepts/{SLUG}").text) == skeleton


# --- limits ----------------------------------------------------------------------------------------


def padded_notebook(size: int) -> bytes:
    """A valid notebook of exactly `size` bytes: one answer cell and a large output."""
    base = own_notebook("def causal_mask(n_q, n_k, align='top_left'):\n    pass\n")
    base.cells[2].outputs = [v4.new_output("stream", name="stdout", text="x")]
    small = len(ipynb(base))
    base.cells[2].outputs[0].text = "x" * (1 + size - small)
    raw = ipynb(base)
    assert len(raw) == size
    return raw


def test_the_size_limit_depends_on_the_file_name(world: World) -> None:
    ada, token = logged_in(world, world.student)
    before = len(ada.get("/api/v1/submissions", headers=world.student.bearer).json())

    def upload(name: str, data: bytes) -> Any:
        return ada.post(
            f"/concepts/{SLUG}/submissions",
            data={"csrf": token, "kind": "public", "source": ""},
            files={"file": (name, data, "application/octet-stream")},
        )

    too_big = upload("big.ipynb", padded_notebook(NOTEBOOK_MAX_BYTES + 300))
    assert too_big.status_code == 303 and too_big.headers["location"] == f"/concepts/{SLUG}"
    back = ada.get(too_big.headers["location"]).text  # the concept page says why, once
    message = html.unescape(back)
    assert "big.ipynb is 8.1 MB; a notebook may be at most 8 MB." in message
    assert "Clear its outputs" in message and 'id="submit-error"' in back

    over_api = client(world.app).post(
        "/api/v1/submissions",
        json={
            "exercise": SLUG,
            "source": padded_notebook(NOTEBOOK_MAX_BYTES + 300).decode(),
            "filename": "big.ipynb",
        },
        headers=world.student.bearer,
    )
    assert over_api.status_code == 413
    assert over_api.json()["detail"].startswith("big.ipynb is 8.1 MB; a notebook may be at most 8 MB.")

    # 100 KB: over the exercise's 64 KB for a .py, well within a notebook's limit
    hundred_kb = padded_notebook(100 * 1024)
    python = upload("attention.py", hundred_kb)
    assert python.status_code == 303
    assert "attention.py is 100 KB; Causal masking takes files of at most 64 KB." in html.unescape(
        ada.get(python.headers["location"]).text
    )
    accepted = upload("outputs.ipynb", hundred_kb)
    submission_id = submission_id_of(accepted)
    assert graded(world, submission_id).source == hundred_kb
    at_limit = upload("full.ipynb", padded_notebook(NOTEBOOK_MAX_BYTES))
    submission_id_of(at_limit)
    after = ada.get("/api/v1/submissions", headers=world.student.bearer).json()
    assert len(after) == before + 2 and {s["id"] for s in after} >= {submission_id}


# --- grader submit --server ------------------------------------------------------------------------


@contextlib.contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app behind a real HTTP server on a free local port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def grader_env() -> dict[str, str]:
    outside = ("GRADER_SERVER", "GRADER_TOKEN", "REDIS_URL", "GRADER_REDIS_URL", "DATABASE_URL")
    return {k: v for k, v in os.environ.items() if k not in outside}


@pytest.mark.sandbox
@pytest.mark.slow
def test_grader_submit_sends_a_notebook_as_it_is(
    world: World, grading: worker.WorkerContext, tmp_path: Path
) -> None:
    path = tmp_path / "attention.ipynb"
    path.write_bytes(ipynb(own_notebook(SOLUTION)))
    with served(world.app) as url:
        command = [GRADER, "submit", SLUG, str(path), "--server", url, "--token", world.student.token]
        with subprocess.Popen(
            [*command, "--wait", "--json", "--timeout", "120"],
            env=grader_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            submission_id = None
            deadline = time.monotonic() + 60
            while submission_id is None and time.monotonic() < deadline and process.poll() is None:
                found = client(world.app).get("/api/v1/submissions", headers=world.student.bearer).json()
                submission_id = found[0]["id"] if found else None
                time.sleep(0.1)
            assert submission_id is not None, process.communicate(timeout=10)
            row = graded(world, submission_id)
            assert row.filename == "attention.ipynb" and row.source == path.read_bytes()
            assert worker.grade_attempt(grading, submission_id, 1) == "passed"
            stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["status"] == "passed" and result["notebook"]["filename"] == "attention.ipynb"
    assert result["notebook"]["module"] == "attention.py"


def test_grader_submit_refuses_a_notebook_over_the_limit_before_sending(tmp_path: Path) -> None:
    path = tmp_path / "huge.ipynb"
    with path.open("wb") as f:
        f.truncate(NOTEBOOK_MAX_BYTES + 1)  # sparse: nothing is written
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    done = subprocess.run(
        [GRADER, "submit", SLUG, str(path), "--server", f"http://127.0.0.1:{port}", "--token", "gr_x"],
        env=grader_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr  # nothing sent: an unreachable server would be 1
    assert "takes notebooks of at most 8 MB" in " ".join(done.stderr.split())
