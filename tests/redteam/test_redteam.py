"""Hostile submissions, each graded for real in each sandbox (bwrap, bwrap with forked runners,
and Docker), against its golden verdict.

Each file in cases/ is one submission to the `guarded-sum` fixture exercise (tight limits) with
`# expect: <status>` and optional `# check: <name>` lines. A case marked `# scope: harness` attacks
only what the trusted side does with the runner's answers (forged frames, error reports, values
built to leak): its defence is the same whatever the sandbox, so it is graded in one (bubblewrap
with forked runners, the quickest to start).
Where a defence is observable from inside, the case computes the right answer only if the
defence held, so `passed` means it did. Only a submission that passes every correctness test
reaches the performance phase, and a case's attack is over by then unless it targets the
measurement: a case marked `# measure: yes` is graded with it, the others without (seconds per
grading, and what they show is the same).
After every case: no process of the sandbox user, no cgroup and no container of ours is left, and
this same process goes on grading the next one (the worker keeps serving).
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grader.catalog import Catalog, Exercise, load_catalog
from grader.engine import grade
from grader.exporters import GradescopeExporter, JunitExporter
from grader.notebooks.feedback import summary_markdown
from grader.verdict import Status, Timings, Verdict
from sandbox import Sandbox, cgroups
from tests.conftest import docker_leftovers, sandbox_processes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((Path(__file__).parent / "cases").glob("*.py"))
BACKENDS = ("bwrap", "bwrap_fork", "docker")
HARNESS_BACKEND = "bwrap_fork"
LEAKED = re.compile(r"LEAK( \[|_[0-9m]| in )")


def student_views(verdict: Verdict) -> dict[str, str]:
    """Everything a student can read of a verdict, on every path: the verdict JSON (the API and the
    page render it), JUnit, Gradescope, the notebook feedback. Only what differs between any two
    gradings is left out: when it ran, its seed, its aggregate timings, public tests' durations."""
    plain = verdict.model_copy(deep=True)
    plain.provenance.seed, plain.provenance.graded_at = 0, ""
    plain.timings = Timings()
    for test in plain.tests:
        if test.visibility == "public":
            test.duration_s = 0.0
        else:
            assert test.duration_s is None, "a hidden test's own duration is shown"
    views = {"json": plain.model_dump_json(), "notebook": summary_markdown(plain)}
    for name, exporter in (("junit", JunitExporter()), ("gradescope", GradescopeExporter())):
        views[name] = exporter.render([plain])
    return views


def header(text: str, key: str) -> list[str]:
    return re.findall(rf"^#\s*{key}:\s*(.+?)\s*$", text, re.MULTILINE)


@pytest.fixture(scope="module")
def target(toy_catalog: Catalog) -> Exercise:
    return toy_catalog.get("guarded-sum")


@pytest.fixture(scope="module")
def curriculum() -> Catalog:
    return load_catalog(ROOT / "exercises", ROOT / "solutions")


@pytest.fixture(scope="module", params=BACKENDS)
def hostile_backend(request: pytest.FixtureRequest) -> Sandbox:
    backend: Sandbox = request.getfixturevalue(request.param)
    return backend


@pytest.fixture
def listeners(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A TCP service on the host's loopback and a host unix socket: the sandbox must reach neither."""
    server = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix_path = str(tmp_path / "service.sock")
    unix.bind(unix_path)
    unix.listen()
    threading.Thread(target=server.accept, daemon=True).start()
    yield server.getsockname()[1], unix_path
    server.close()
    unix.close()


def our_cgroups() -> list[Path]:
    _, mounts = cgroups.discover()
    prefix = f"g{os.getpid()}-"
    return [
        p
        for m in mounts.values()
        if (m / cgroups.PARENT).is_dir()
        for p in (m / cgroups.PARENT).glob(prefix + "*")
    ]


def _gradings() -> list[Any]:
    """Each case in each sandbox (in HARNESS_BACKEND only for a case scoped to the harness)."""
    pairs = []
    for backend in BACKENDS:
        for case in CASES:
            if backend == HARNESS_BACKEND or header(case.read_text(), "scope") != ["harness"]:
                pairs.append(pytest.param(case, backend, id=f"{backend}-{case.stem}"))
    return pairs


@pytest.mark.parametrize(("case", "backend_name"), _gradings())
def test_hostile_submission(
    case: Path,
    backend_name: str,
    target: Exercise,
    curriculum: Catalog,
    tmp_path: Path,
    listeners: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    hostile_backend: Sandbox = request.getfixturevalue(backend_name)
    text = case.read_text()
    exercise = curriculum.get(header(text, "target")[0]) if header(text, "target") else target
    (expect,) = header(text, "expect")
    checks = set(header(text, "check"))
    canary = tmp_path / "canary.txt"
    canary.write_text("original")
    monkeypatch.setenv("GRADER_REDTEAM_SECRET", "SECRET-VALUE")
    port, unix_path = listeners
    source = (
        text.replace("{{PORT}}", str(port))
        .replace("{{UNIX}}", unix_path)
        .replace("{{CANARY}}", str(canary))
        .replace("{{REPO}}", str(ROOT))
    )
    # a seed-blind case is graded on two seeds (two sets of hidden inputs): what it shows must not differ
    seeds: list[int | None] = (
        [11, 12] if "seed-blind" in checks else [None] * (2 if "run-twice" in checks else 1)
    )
    views = []
    for seed in seeds:
        verdict = grade(
            exercise,
            source.encode(),
            hostile_backend,
            filename=f"{exercise.spec.entrypoint}.py",
            seed=seed,
            measure=header(text, "measure") == ["yes"],
        )
        assert verdict.status == Status(expect), (
            f"{verdict.summary}\n{verdict.message}\n{verdict.output[-500:]}"
        )
        views.append(student_views(verdict))
    if "seed-blind" in checks:
        assert views[0] == views[1], "what the student sees depends on the hidden inputs"
        if "no-leak-in-output" not in checks:  # there, the public test's input is printed, rightly
            assert not any(LEAKED.search(view) for view in views[0].values())
    if "one-location" in checks:
        hidden = [t.message for t in verdict.tests if t.visibility == "hidden"]
        assert len({m for m in hidden if "line " in m}) <= 1, hidden
    assert sandbox_processes() == [], "a process of the sandbox outlived it"
    assert our_cgroups() == [], "a cgroup of the sandbox outlived it"
    if hostile_backend.name == "docker":
        assert docker_leftovers() == [], "a container outlived its grading"
    if "host-untouched" in checks:
        assert canary.read_text() == "original"
        assert not (ROOT / "pwned.txt").exists() and not (ROOT / "solutions" / "pwned.txt").exists()
        assert not Path("/root/pwned.txt").exists()
    if "no-leak" in checks:
        hidden = [t for t in verdict.tests if t.visibility == "hidden"]
        # the submission's own source lines may be quoted; data it computed must not appear
        assert hidden and not any(LEAKED.search(t.message) for t in hidden), [t.message for t in hidden]
        assert not LEAKED.search(verdict.summary + verdict.message)
    if "no-leak-in-output" in checks:
        public = [t for t in verdict.tests if t.visibility == "public"]
        assert "LEAK [[0.0, 1.0, 2.0]" in verdict.output  # the public test's input: the submission may see it
        assert verdict.output.count("LEAK") == len(public) and verdict.output_withheld
    assert "SECRET-VALUE" not in verdict.model_dump_json()


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        pytest.param(b"\xff\xfe\x00d\x00e\x00f", Status.REJECTED, "not valid UTF-8", id="not-utf8"),
        pytest.param(b"# " + b"x" * (65 * 1024), Status.REJECTED, "limited to 64 KB", id="too-large"),
        pytest.param(b"", Status.REJECTED, "is empty", id="empty"),
        pytest.param(b"def row_sums(x)\n    return x\n", Status.REJECTED, "Syntax error", id="syntax-error"),
        pytest.param(
            b"def other(x):\n    return x\n", Status.FAILED, "does not define row_sums", id="missing-function"
        ),
    ],
)
def test_bad_input(
    raw: bytes, status: Status, words: str, target: Exercise, hostile_backend: Sandbox
) -> None:
    verdict = grade(target, raw, hostile_backend, filename="rows.py")
    assert verdict.status is status
    assert words in verdict.message + " ".join(t.message for t in verdict.tests)


def test_the_worker_keeps_serving_after_the_red_team(target: Exercise, hostile_backend: Sandbox) -> None:
    verdict = grade(target, target.solution.read_bytes(), hostile_backend)
    assert verdict.status is Status.PASSED
