"""Grading end to end on the fixture exercises: verdicts, feedback, and our own failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader.catalog import Catalog, load_catalog
from grader.engine import grade
from grader.verdict import Outcome, Status
from sandbox import Limits, Sandbox, SandboxError, SandboxProcess

pytestmark = pytest.mark.sandbox
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "catalog"


def run(catalog: Catalog, backend: Sandbox, source: str, slug: str = "guarded-sum", **kw: object):  # type: ignore[no-untyped-def]
    return grade(catalog.get(slug), source.encode(), backend, **kw)  # type: ignore[arg-type]


def test_reference_passes_with_measured_performance(toy_catalog: Catalog, bwrap: Sandbox) -> None:
    exercise = toy_catalog.get("guarded-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), bwrap)
    assert verdict.status is Status.PASSED, verdict.model_dump_json(indent=1)
    assert verdict.score == verdict.max_score == 4
    (perf,) = verdict.performance
    assert perf.passed and perf.metric == "time" and perf.source == "cgroup" and not perf.runner_reported
    assert perf.pairs >= 5 and len(perf.samples) == perf.pairs and perf.ci_low <= perf.ratio <= perf.ci_high  # type: ignore[operator]
    t = verdict.timings
    assert t.sandbox_start_s > 0 and t.runtime_import_s > 0 and t.performance_s > 0 and t.total_s >= t.tests_s
    prov = verdict.provenance
    assert prov.sandbox == "bwrap" and prov.torch and prov.exercise_version == exercise.version
    assert prov.measured_by == "cgroup" and len(prov.submission_sha256) == 64


def test_memory_is_measured_outside_and_allocations_by_the_probe(
    toy_catalog: Catalog, bwrap: Sandbox
) -> None:
    exercise = toy_catalog.get("toy-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), bwrap)
    assert verdict.status is Status.PASSED, verdict.summary
    figures = {p.name: p for p in verdict.performance}
    assert set(figures) == {"speed", "memory", "alloc", "growth"}
    growth = figures["growth"]
    assert growth.kind == "exponent" and abs(growth.ratio) < 0.2 and growth.runner_reported
    assert [s[0] for s in growth.samples] == [4.0, 16.0, 64.0]
    memory, alloc = figures["memory"], figures["alloc"]
    assert memory.source == "cgroup" and not memory.runner_reported and memory.unit == "bytes"
    assert alloc.source == "probe" and alloc.runner_reported
    assert alloc.submission_value == alloc.reference_value == 256 * 4
    (wrong,) = [w for w in exercise.wrong if w.name == "materialize"]
    slow = grade(exercise, wrong.path.read_bytes(), bwrap)
    assert slow.status is Status.TOO_SLOW
    flagged = {p.name: p for p in slow.performance if not p.passed}
    assert {"memory", "alloc"} <= set(flagged)
    assert (
        flagged["memory"].submission_value > 8 * 2**20
        and flagged["alloc"].submission_value == 256 * 256 * 64 * 4
    )
    messages = {t.name: t.message for t in slow.tests}
    assert (
        "peak memory was" in messages["test_memory"]
        and "largest single allocation" in messages["test_allocation"]
    )


def test_skeleton_fails_with_actionable_messages(toy_catalog: Catalog, bwrap: Sandbox) -> None:
    exercise = toy_catalog.get("guarded-sum")
    verdict = grade(exercise, exercise.skeleton.read_bytes(), bwrap)
    assert verdict.status is Status.FAILED and verdict.summary == "0 of 4 tests passed (1 not run)"
    first = verdict.tests[0]
    assert first.visibility == "public" and first.outcome is Outcome.FAILED
    assert first.message.startswith("NotImplementedError (rows.py, line 6, in row_sums:")
    assert "skeleton" in first.hint
    assert verdict.tests[-1].outcome is Outcome.SKIPPED  # no performance phase for wrong code


def test_public_only_runs_no_hidden_tests_and_no_performance(toy_catalog: Catalog, bwrap: Sandbox) -> None:
    exercise = toy_catalog.get("guarded-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), bwrap, public_only=True, measure=False)
    assert verdict.status is Status.PASSED
    assert [t.name for t in verdict.tests] == ["test_small"] and verdict.performance == []


def test_hidden_tests_do_not_echo_the_submissions_own_messages(toy_catalog: Catalog, bwrap: Sandbox) -> None:
    source = "def row_sums(x):\n    raise ValueError('LEAK ' + repr(x.tolist()))\n"
    verdict = run(toy_catalog, bwrap, source)
    public, *hidden = [t for t in verdict.tests if t.outcome is not Outcome.SKIPPED]
    assert "LEAK [[0.0, 1.0, 2.0]" in public.message
    assert hidden and all("LEAK [" not in t.message for t in hidden)  # the source line may show, values not
    assert all("ValueError" in t.message and "line 2" in t.message for t in hidden)


def test_import_failures_are_runtime_errors_reported_by_every_test(
    toy_catalog: Catalog, bwrap: Sandbox
) -> None:
    verdict = run(toy_catalog, bwrap, "import torch\nx = torch.undefined_thing\n")
    assert verdict.status is Status.RUNTIME_ERROR
    assert "your module failed to import: AttributeError" in verdict.message
    assert "line 2" in verdict.message
    assert {t.outcome for t in verdict.tests} <= {Outcome.ERROR, Outcome.SKIPPED}


def test_missing_function(toy_catalog: Catalog, bwrap: Sandbox) -> None:
    verdict = run(toy_catalog, bwrap, "def row_sum(x):\n    return x\n")
    assert verdict.status is Status.FAILED
    assert (
        verdict.tests[0].message
        == "rows.py does not define row_sums: define it with the signature from the skeleton"
    )


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("def row_sums(x:\n", "Syntax error in rows.py, line 1"),
        (
            "import torch\ndef row_sums(x):\n    return x.sum(1)\n",
            "sum is not allowed in this exercise (torch.Tensor.sum",
        ),
    ],
)
def test_rejections_never_start_a_sandbox(toy_catalog: Catalog, source: str, words: str) -> None:
    class NoSandbox(Sandbox):
        name = "refuses"

        def start(self, limits: Limits, *, device: str = "cpu") -> SandboxProcess:
            raise AssertionError("a rejected submission must not start a sandbox")

    verdict = grade(toy_catalog.get("toy-sum"), source.encode(), NoSandbox())
    assert verdict.status is Status.REJECTED and words in verdict.message and verdict.tests == []


def test_sandbox_failures_are_system_errors(toy_catalog: Catalog) -> None:
    class Broken(Sandbox):
        name = "broken"

        def start(self, limits: Limits, *, device: str = "cpu") -> SandboxProcess:
            raise SandboxError("the daemon is down")

    exercise = toy_catalog.get("toy-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), Broken())
    assert verdict.status is Status.SYSTEM_ERROR and "the daemon is down" in verdict.message
    assert not verdict.status.earned


def broken_copy(tmp_path: Path, edit: str, text: str) -> Catalog:
    root = tmp_path / "catalog"
    shutil.copytree(FIXTURES, root)
    (root / "solutions" / "guarded-sum" / edit).write_text(text)
    return load_catalog(root / "exercises", root / "solutions")


def test_a_broken_hidden_test_file_is_our_failure(tmp_path: Path, bwrap: Sandbox) -> None:
    catalog = broken_copy(tmp_path, "test_hidden.py", "def test_x(:\n")
    exercise = catalog.get("guarded-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), bwrap)
    assert verdict.status is Status.SYSTEM_ERROR and "could not run" in verdict.message


def test_a_reference_that_fails_in_its_runner_is_our_failure(tmp_path: Path, bwrap: Sandbox) -> None:
    catalog = broken_copy(
        tmp_path, "solution.py", (FIXTURES / "solutions/guarded-sum/solution.py").read_text()
    )
    exercise = catalog.get("guarded-sum")
    student = exercise.solution.read_bytes()
    exercise.solution.write_text(
        student.decode()
        + "\nimport os\nif os.getcwd() == '/work':\n    raise RuntimeError('reference broke')\n"
    )
    verdict = grade(exercise, student, bwrap)
    assert verdict.status is Status.SYSTEM_ERROR
    assert "reference broke" in verdict.message


def test_undeclared_performance_checks_are_our_failure(tmp_path: Path, bwrap: Sandbox) -> None:
    hidden = (FIXTURES / "solutions/guarded-sum/test_hidden.py").read_text().replace('"speed"', '"nope"')
    catalog = broken_copy(tmp_path, "test_hidden.py", hidden)
    exercise = catalog.get("guarded-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), bwrap)
    assert verdict.status is Status.SYSTEM_ERROR and "'nope' is not declared" in verdict.message


def test_the_unsandboxed_backend_grades_the_same(toy_catalog: Catalog) -> None:
    from sandbox import get_backend

    exercise = toy_catalog.get("guarded-sum")
    wrong = exercise.wrong[0].path.read_bytes()
    verdict = grade(exercise, wrong, get_backend("none"))
    assert verdict.status is Status.FAILED and verdict.provenance.sandbox == "none"


def test_peak_memory_around_several_calls(toy_catalog: Catalog, bwrap: Sandbox) -> None:
    import torch

    from grader.harness.perf import Perf
    from grader.harness.results import Results
    from grader.harness.session import GradingSession

    exercise = toy_catalog.get("guarded-sum")
    source = "def row_sums(x):\n    big = x.repeat(1, 256)\n    return big[:, : x.shape[1]].sum(1)\n"
    session = GradingSession(exercise, source, bwrap, seed=0)
    try:
        session.start()
        x = torch.ones(256, 256)
        result, peak = Perf(session, Results(), "t").peak_memory(
            lambda: [session.submission().row_sums(x) for _ in range(2)]
        )
        assert len(result) == 2 and peak > 256 * 256 * 256 * 4  # the 64 MiB intermediate, seen from outside
    finally:
        session.close()


def test_a_hidden_test_named_like_a_public_one_still_runs(tmp_path: Path, bwrap: Sandbox) -> None:
    root = tmp_path / "catalog"
    shutil.copytree(FIXTURES, root)
    test = "from grader.testing import expect\n\n\ndef test_same(submission):\n    expect({}, {!r})\n"
    (root / "exercises/guarded-sum/test_public.py").write_text(test.format(True, "public"))
    (root / "solutions/guarded-sum/test_hidden.py").write_text(test.format(False, "hidden check"))
    exercise = load_catalog(root / "exercises", root / "solutions").get("guarded-sum")
    verdict = grade(exercise, exercise.solution.read_bytes(), bwrap)
    assert [(t.visibility, t.outcome, t.message) for t in verdict.tests] == [
        ("public", Outcome.PASSED, ""),
        ("hidden", Outcome.FAILED, "hidden check"),
    ]


def test_the_runtime_s_own_output_is_not_the_submission_s(bwrap: Sandbox) -> None:
    from grader.catalog import load_catalog as load

    root = Path(__file__).resolve().parents[2]
    exercise = load(root / "exercises", root / "solutions", strict=False).get("causal-masking")  # blocks ops
    verdict = grade(exercise, exercise.solution.read_bytes(), bwrap, measure=False)
    assert verdict.status is Status.PASSED and verdict.output == "" and verdict.output_bytes == 0


DETACHED = """import torch


def cross_entropy(logits, targets, ignore_index=-100):
    x = logits.detach().float().reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    keep = t != ignore_index
    picked = x.gather(-1, torch.where(keep, t, 0).unsqueeze(-1)).squeeze(-1)
    m = x.max(dim=-1, keepdim=True).values
    losses = (m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1)) - picked) * keep
    return losses.sum() / keep.sum().clamp(min=1)
"""


def test_an_output_cut_from_the_graph_is_said_in_our_words(bwrap: Sandbox) -> None:
    """The runner's own backward step finds nothing to backpropagate: the gradient tests say so,
    naming the function the test called, not "your code raised ValueError"."""
    curriculum = load_catalog(FIXTURES.parents[2] / "exercises", FIXTURES.parents[2] / "solutions")
    verdict = run(curriculum, bwrap, DETACHED, slug="cross-entropy", measure=False)
    gradients = [t for t in verdict.tests if t.name.startswith("test_gradient") and not t.ok]
    assert verdict.status is Status.FAILED and gradients
    for test in gradients:
        assert "the output of cross_entropy is not connected to the inputs' gradients" in test.message
        assert "ValueError" not in test.message and "detach" in test.hint
