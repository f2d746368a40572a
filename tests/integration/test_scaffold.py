"""`grader exercise new`: a new exercise package that validates as written, and refusals that
say what is wrong in one line and write nothing."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from grader.authoring import ScaffoldError, scaffold
from grader.authoring.scaffold import entrypoint_for, templates
from grader.catalog import load_catalog
from grader.validate import validate_exercise
from sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
GRADER = str(Path(sys.executable).with_name("grader"))
TRACKS = """\
[[tracks]]
id = "basics"
title = "Basics"

[[tracks]]
id = "attention"
title = "Attention"
"""


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A folder of one's own: exercises/tracks.toml with two tracks, no exercise, no solutions."""
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "tracks.toml").write_text(TRACKS)
    return tmp_path


def grader(course: Path, *args: str, exercises: Path | None = None) -> subprocess.CompletedProcess[str]:
    folders = ["--exercises-dir", str(exercises or course / "exercises")]
    folders += ["--solutions-dir", str(course / "solutions")]
    return subprocess.run([GRADER, *folders, *args], capture_output=True, text=True, timeout=300, check=False)


def said(done: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, with a wrapped line joined again (rich wraps at the width)."""
    return " ".join(done.stdout.split())


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder`, with the bytes of the files."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))
    }


@pytest.mark.sandbox
def test_a_new_exercise_validates_as_written(course: Path, bwrap: Sandbox) -> None:
    options = ["--title", "Layer norm", "--track", "attention", "--level", "2", "--minutes", "15"]
    done = grader(course, "exercise", "new", "layer-norm", *options)
    assert done.returncode == 0, done.stderr
    files = [
        "exercises/layer-norm/README.md",
        "exercises/layer-norm/exercise.toml",
        "exercises/layer-norm/skeleton.py",
        "exercises/layer-norm/test_public.py",
        "solutions/layer-norm/solution.py",
        "solutions/layer-norm/test_hidden.py",
        "solutions/layer-norm/wrong/whole_tensor_mean.py",
    ]
    assert sorted(p for p, content in snapshot(course).items() if content is not None) == sorted(
        ["exercises/tracks.toml", *files]
    )
    for name in files:
        assert str(course / name) in done.stdout
    assert "marked TEMPLATE" in said(done)
    assert "exercise validate layer-norm" in said(done) and "--solutions-dir" in said(done)

    exercise = load_catalog(course / "exercises", course / "solutions").get("layer-norm")
    spec = exercise.spec
    assert (spec.title, spec.track, spec.level, spec.minutes) == ("Layer norm", "attention", 2, 15)
    assert (
        spec.entrypoint == "layer_norm"
        and "grader test layer-norm layer_norm.py" in exercise.readme.read_text()
    )
    [wrong] = exercise.wrong
    assert wrong.caught_by == ("test_random_shapes", "test_rows_have_mean_zero")

    checks = validate_exercise(exercise, bwrap)
    assert [(c.subject, c.got) for c in checks] == [
        ("reference", "passed"),
        ("skeleton", "failed"),
        ("wrong/whole_tensor_mean", "failed"),
    ]
    assert all(c.ok for c in checks), [c.detail for c in checks if not c.ok]


@pytest.mark.sandbox
def test_the_defaults_and_the_validate_command(course: Path) -> None:
    done = grader(course, "exercise", "new", "top-k")
    assert done.returncode == 0, done.stderr
    assert "in track basics" in said(done)  # the first track of tracks.toml
    spec = tomllib.loads((course / "exercises" / "top-k" / "exercise.toml").read_text())
    assert (spec["title"], spec["track"], spec["level"], spec["minutes"]) == ("Top k", "basics", 1, 30)
    done = grader(course, "exercise", "validate", "top-k")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 1 exercise(s) valid" in said(done)
    assert "wrong/whole_tensor_mean" in said(done) and "skeleton" in said(done)


@pytest.mark.sandbox
@pytest.mark.slow
def test_the_speed_check_validates_once_uncommented(course: Path, bwrap: Sandbox) -> None:
    """The commented-out performance check of the templates works when an author turns it on."""
    done = scaffold("row-centre", course / "exercises", course / "solutions")
    settings = done.exercise_dir / "exercise.toml"
    commented = re.compile(r"^# (\[performance|metric|threshold|tolerance|min_pairs|max_pairs)", re.MULTILINE)
    settings.write_text(commented.sub(r"\1", settings.read_text()))
    hidden = done.solution_dir / "test_hidden.py"
    text = hidden.read_text()
    start = text.index("# @pytest.mark.performance")
    code = "\n".join(line.removeprefix("# ") for line in text[start:].splitlines())
    text = text[:start] + code.replace("\n#\n", "\n\n") + "\n"
    hidden.write_text(text.replace("import assert_close,", "import Call, assert_close,"))
    exercise = load_catalog(course / "exercises", course / "solutions").get("row-centre")
    assert list(exercise.spec.performance) == ["speed"]
    checks = validate_exercise(exercise, bwrap)
    assert all(c.ok for c in checks), [(c.subject, c.detail) for c in checks if not c.ok]
    assert [c.subject for c in checks] == ["reference", "skeleton", "wrong/whole_tensor_mean"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["Layer_Norm"], "'Layer_Norm' is not a slug: use lowercase letters", id="bad-slug"),
        pytest.param(["layer--norm"], "'layer--norm' is not a slug", id="double-dash"),
        pytest.param(
            ["layer-norm", "--track", "attn"],
            "unknown track 'attn'. Did you mean attention? Known: basics, attention",
            id="unknown-track",
        ),
        pytest.param(["layer-norm", "--title", "two\nlines"], "the title must be one line", id="title"),
        pytest.param(["layer-norm", "--level", "6"], "Invalid value for '--level'", id="level"),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(course: Path, args: list[str], words: str) -> None:
    before = snapshot(course)
    done = grader(course, "exercise", "new", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert words in " ".join(done.stderr.split()), done.stderr
    assert snapshot(course) == before


@pytest.mark.parametrize("side", ["exercises", "solutions"])
def test_an_existing_folder_is_never_overwritten(course: Path, side: str) -> None:
    mine = course / side / "rmsnorm" / "notes.md"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own work")
    before = snapshot(course)
    done = grader(course, "exercise", "new", "rmsnorm")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    stderr = " ".join(done.stderr.split())
    assert f"{course / side / 'rmsnorm'} already exists: choose another slug (nothing was written)" in stderr
    assert snapshot(course) == before


def test_a_missing_exercises_folder_or_tracks_file_is_refused(course: Path) -> None:
    before = snapshot(course)
    done = grader(course, "exercise", "new", "top-k", exercises=course / "nowhere")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{course / 'nowhere'}: no such directory" in " ".join(done.stderr.split())
    (course / "exercises" / "tracks.toml").unlink()
    done = grader(course, "exercise", "new", "top-k")
    assert done.returncode == 2 and "tracks.toml: missing" in " ".join(done.stderr.split())
    assert "one [[tracks]] table each" in " ".join(done.stderr.split())  # brackets printed, not markup
    assert snapshot(course) == {k: v for k, v in before.items() if k != "exercises/tracks.toml"}


def test_a_title_with_quotes_and_backslashes_is_written_as_given(course: Path) -> None:
    title = 'The "\\n" of it: a title \\ with ` and """'
    done = scaffold("quoted", course / "exercises", course / "solutions", title=title)
    spec = tomllib.loads((done.exercise_dir / "exercise.toml").read_text())
    assert spec["title"] == title
    for path, _ in done.files:
        if path.suffix == ".py":
            compile(path.read_text(), str(path), "exec")  # raises if a docstring broke
            assert "{{" not in path.read_text()
    assert (done.exercise_dir / "README.md").read_text().startswith(f"# {title}\n")


def test_the_api_refuses_before_writing(course: Path) -> None:
    with pytest.raises(ScaffoldError, match="level 0 is out of range"):
        scaffold("top-k", course / "exercises", course / "solutions", level=0)
    with pytest.raises(ScaffoldError, match="the title is empty"):
        scaffold("top-k", course / "exercises", course / "solutions", title="  ")
    assert not (course / "exercises" / "top-k").exists() and not (course / "solutions").exists()


@pytest.mark.parametrize(
    ("slug", "module"),
    [
        ("layer-norm", "layer_norm"),
        ("2d-conv", "ex_2d_conv"),
        ("torch", "torch_impl"),  # the runner would replace torch itself
        ("random", "random_impl"),
        ("class", "class_impl"),
    ],
)
def test_the_entrypoint_is_a_module_name_of_its_own(slug: str, module: str) -> None:
    assert entrypoint_for(slug) == module


def test_the_templates_are_package_data() -> None:
    """Every template is shipped with the package: pyproject.toml's package-data matches it."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "grader.authoring"
    ]
    package = ROOT / "grader" / "authoring"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    found = {package / "templates" / side / (str(relative) + ".tmpl") for side, relative, _ in templates()}
    assert len(found) == 7 and found <= shipped
