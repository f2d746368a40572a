"""The real curriculum: every exercise proves its hidden tests work (the checks of `grader exercise
validate`), and its skeleton fails with messages a learner can act on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader.catalog import Catalog, load_catalog
from grader.engine import grade
from grader.validate import validate_exercise
from grader.verdict import Status
from sandbox import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
GRADER = str(Path(sys.executable).with_name("grader"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRADER, *args], capture_output=True, text=True, timeout=1800, cwd=ROOT, check=False
    )


@pytest.fixture(scope="module")
def curriculum() -> Catalog:
    return load_catalog(ROOT / "exercises", ROOT / "solutions")


def test_the_sample_submission_passes(curriculum: Catalog, bwrap_fork: Sandbox) -> None:
    sample = ROOT / "examples" / "submissions" / "attention.py"
    verdict = grade(curriculum.get("causal-masking"), sample.read_bytes(), bwrap_fork, filename=sample.name)
    assert verdict.status is Status.PASSED, verdict.summary


SLUGS = sorted(p.name for p in (ROOT / "exercises").iterdir() if (p / "exercise.toml").is_file())


@pytest.mark.parametrize("slug", SLUGS)
def test_the_exercise_validates(slug: str, curriculum: Catalog, bwrap_fork: Sandbox) -> None:
    # what `grader exercise validate <slug> --seeds 3` checks (its command line is tested in
    # test_cli), in this process: one fork server for every exercise a test worker validates.
    # Three seeds: a hidden test whose data or tolerance holds only for some inputs fails here.
    checks = validate_exercise(curriculum.get(slug), bwrap_fork, seeds=3)
    failed = [f"{c.subject}: expected {c.expected}, got {c.got}: {c.detail}" for c in checks if not c.ok]
    assert not failed, "\n".join(failed)
    subjects = [c.subject for c in checks]
    assert subjects[:4] == ["reference", "reference (seed 1)", "reference (seed 2)", "skeleton"]
    assert len(subjects) == 4 + len(curriculum.get(slug).wrong)


@pytest.mark.parametrize("slug", SLUGS)
def test_skeletons_fail_with_messages_a_learner_can_act_on(
    slug: str, curriculum: Catalog, bwrap_fork: Sandbox
) -> None:
    # what `grader test <slug> skeleton.py` shows, graded in this process (the CLI's own path is
    # tested in test_cli)
    exercise = curriculum.get(slug)
    verdict = grade(exercise, exercise.skeleton.read_bytes(), bwrap_fork, public_only=True)
    assert verdict.status is Status.FAILED
    placeholders = [t for t in verdict.tests if "NotImplementedError" in t.message]
    assert placeholders and all("skeleton" in t.hint for t in placeholders)


def test_the_curriculum_is_one_connected_graph_of_tracks() -> None:
    data = json.loads(run("exercise", "list", "--json").stdout)
    tracks = {entry["track"]["id"]: [c["id"] for c in entry["concepts"]] for entry in data}
    order = "foundations tokenization attention transformer training inference scale alignment"
    assert list(tracks) == [*order.split(), "retrieval", "multimodal", "gpu-kernels"]
    assert sorted(c for concepts in tracks.values() for c in concepts) == SLUGS and len(SLUGS) == 50
    assert "50 concepts in 11 tracks, one connected curriculum" in run("exercise", "list").stdout
