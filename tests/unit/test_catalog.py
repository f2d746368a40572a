"""Loading exercise packages: every problem reported with its file, and a stable order."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.catalog import CatalogError, UnknownExercise, content_hash, load_catalog
from grader.verdict import Status

TRACKS = """
[[tracks]]
id = "basics"
title = "Basics"

[[tracks]]
id = "advanced"
title = "Advanced"
"""


def make(
    root: Path,
    slug: str,
    *,
    track: str = "basics",
    level: int = 1,
    prereqs: tuple[str, ...] = (),
    extra: str = "",
    skip: tuple[str, ...] = (),
    spec_id: str | None = None,
) -> None:
    ex, sol = root / "exercises" / slug, root / "solutions" / slug
    ex.mkdir(parents=True, exist_ok=True)
    (sol / "wrong").mkdir(parents=True, exist_ok=True)
    (root / "exercises" / "tracks.toml").write_text(TRACKS)
    toml = (
        f'id = "{spec_id or slug}"\ntitle = "T"\nsummary = "S"\ntrack = "{track}"\nlevel = {level}\n'
        f'minutes = 10\nentrypoint = "mod"\nprerequisites = {list(prereqs)!r}\n{extra}'
    ).replace("'", '"')
    files = {
        ex / "exercise.toml": toml,
        ex / "README.md": "# T",
        ex / "skeleton.py": "def f(): raise NotImplementedError",
        ex / "test_public.py": "def test_x(): pass",
        sol / "solution.py": "def f(): return 1",
        sol / "test_hidden.py": "def test_y(): pass",
    }
    for path, text in files.items():
        if path.name not in skip:
            path.write_text(text)


def load(root: Path):  # type: ignore[no-untyped-def]
    return load_catalog(root / "exercises", root / "solutions")


def problems(root: Path) -> str:
    with pytest.raises(CatalogError) as info:
        load(root)
    return "\n".join(info.value.problems)


def test_a_valid_catalog_is_ordered_by_track_then_prerequisites(tmp_path: Path) -> None:
    make(tmp_path, "zeta", level=1)
    make(tmp_path, "alpha", level=3, prereqs=("zeta",))
    make(tmp_path, "beta", level=2)
    make(tmp_path, "late", track="advanced", level=1)
    make(tmp_path, "needs-late", level=1, prereqs=("late",))
    cat = load(tmp_path)
    assert cat.order == ["zeta", "beta", "alpha", "late", "needs-late"]
    assert [(t.id, [e.slug for e in exs]) for t, exs in cat.by_track()] == [
        ("basics", ["zeta", "beta", "alpha", "needs-late"]),
        ("advanced", ["late"]),
    ]
    assert cat.dependents("zeta") == ["alpha"]


def test_prerequisites_always_come_first_even_across_tracks(tmp_path: Path) -> None:
    make(tmp_path, "late", track="advanced")
    make(tmp_path, "early", track="basics", prereqs=("late",))
    make(tmp_path, "first", track="basics")
    assert load(tmp_path).order == ["first", "late", "early"]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda r: make(r, "a", prereqs=("ghost",)), "unknown prerequisite 'ghost'"),
        (
            lambda r: (
                make(r, "a", prereqs=("b",)),
                make(r, "b", prereqs=("c",)),
                make(r, "c", prereqs=("a",)),
            ),
            "prerequisite cycle: a -> b -> c -> a",
        ),
        (lambda r: make(r, "a", prereqs=("a",)), "cannot be its own prerequisite"),
        (lambda r: make(r, "a", skip=("skeleton.py",)), "skeleton.py: missing"),
        (lambda r: make(r, "a", skip=("test_hidden.py",)), "test_hidden.py: missing"),
        (lambda r: make(r, "a", track="nope"), "track 'nope' is not listed"),
        (lambda r: make(r, "a", spec_id="b"), "differs from its folder name"),
        (
            lambda r: make(r, "a", extra='[performance.speed]\nmetric = "time"\nthreshold = -1\n'),
            "performance.speed.threshold: Input should be greater than or equal to 0",
        ),
        (
            lambda r: make(r, "a", extra='[performance.speed]\nmetric = "time"\nthreshold = 0.5\n'),
            "would ask students to beat the reference",
        ),
        (
            lambda r: make(r, "a", extra='[performance.speed]\nmetric = "ops"\nthreshold = 0\n'),
            "a ratio threshold must be greater than 0",
        ),
        (
            lambda r: make(r, "a", extra='[performance.g]\nmetric = "ops"\nthreshold = 1\nsizes = [8, 4]\n'),
            "sizes must be at least two increasing numbers",
        ),
        (
            lambda r: make(r, "a", extra='[performance.speed]\nmetric = "speed"\nthreshold = 2\n'),
            "performance.speed.metric",
        ),
        (
            lambda r: make(r, "a", extra='[performance.speed]\nmetric = "device_time"\nthreshold = 0.8\n'),
            "would ask students to beat the reference",
        ),
        (
            lambda r: make(
                r, "a", extra='[performance.g]\nmetric = "device_time"\nthreshold = 1\nsizes = [4, 8]\n'
            ),
            "cannot use device_time",
        ),
        (lambda r: make(r, "a", extra="[limits]\nmemory_mb = 0\n"), "limit memory_mb must be positive"),
        (lambda r: make(r, "a", extra="[limits]\ngpus = 2\n"), "unknown limit(s): gpus"),
        (lambda r: make(r, "a", extra="colour = 1\n"), "colour: Extra inputs are not permitted"),
        (lambda r: make(r, "a", extra="level = 9\n"), "exercise.toml"),
        (lambda r: make(r, "Bad_Slug"), "folder name is not a slug"),
    ],
    ids=[
        "unknown-prereq",
        "cycle",
        "self-prereq",
        "missing-skeleton",
        "missing-hidden",
        "unknown-track",
        "id-mismatch",
        "negative-threshold",
        "threshold-below-one",
        "zero-ratio-threshold",
        "bad-sizes",
        "bad-metric",
        "device-time-below-one",
        "device-time-growth",
        "zero-limit",
        "unknown-limit",
        "unknown-key",
        "duplicate-key",
        "bad-slug",
    ],
)
def test_problems_are_reported_with_their_file(tmp_path: Path, setup, expected: str) -> None:  # type: ignore[no-untyped-def]
    setup(tmp_path)
    assert expected in problems(tmp_path)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    make(tmp_path, "a", prereqs=("ghost",))
    make(tmp_path, "b", skip=("README.md",))
    found = problems(tmp_path)
    assert "ghost" in found and "README.md: missing" in found


def test_orphan_solutions_are_reported(tmp_path: Path) -> None:
    make(tmp_path, "a")
    (tmp_path / "solutions" / "forgotten").mkdir()
    assert "solutions for an exercise that does not exist" in problems(tmp_path)


def test_wrong_variants_declare_their_verdict(tmp_path: Path) -> None:
    make(tmp_path, "a")
    wrong = tmp_path / "solutions" / "a" / "wrong"
    (wrong / "slow.py").write_text("# expect: too_slow\n# why: loops\n# caught-by: test_speed, test_x\n")
    cat = load(tmp_path)
    (variant,) = cat.get("a").wrong
    assert (variant.name, variant.expect, variant.why, variant.caught_by) == (
        "slow",
        Status.TOO_SLOW,
        "loops",
        ("test_speed", "test_x"),
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("# why: x\n", "needs '# expect"),
        ("# expect: great\n# why: x\n", "unknown status 'great'"),
        ("# expect: passed\n# why: x\n", "cannot expect passed"),
    ],
)
def test_bad_wrong_variant_headers(tmp_path: Path, header: str, expected: str) -> None:
    make(tmp_path, "a")
    (tmp_path / "solutions" / "a" / "wrong" / "w.py").write_text(header)
    assert expected in problems(tmp_path)


def test_unknown_exercise_suggests_close_names(tmp_path: Path) -> None:
    make(tmp_path, "causal-masking")
    with pytest.raises(UnknownExercise, match="Did you mean causal-masking"):
        load(tmp_path).get("causal-mask")


def test_content_hash_follows_every_file_of_both_folders(tmp_path: Path) -> None:
    make(tmp_path, "a")
    ex, sol = tmp_path / "exercises" / "a", tmp_path / "solutions" / "a"
    first = content_hash(ex, sol)
    (ex / "__pycache__").mkdir()
    (ex / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert content_hash(ex, sol) == first
    (sol / "test_hidden.py").write_text("def test_y(): assert True")
    assert content_hash(ex, sol) != first
    assert load(tmp_path).get("a").version == content_hash(ex, sol)


def test_the_real_curriculum_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    cat = load_catalog(root / "exercises", root / "solutions")
    assert cat.order, "no exercises found"


def test_a_lenient_load_leaves_broken_exercises_out_and_keeps_their_problems(tmp_path: Path) -> None:
    make(tmp_path, "good")
    make(tmp_path, "needs-half", prereqs=("half",))
    make(tmp_path, "half", skip=("skeleton.py",))
    (tmp_path / "solutions" / "orphan").mkdir()
    cat = load_catalog(tmp_path / "exercises", tmp_path / "solutions", strict=False)
    assert cat.order == ["good", "needs-half"]
    assert set(cat.broken) == {"half", "orphan"}
    with pytest.raises(CatalogError, match="skeleton.py: missing"):
        cat.get("half")
    with pytest.raises(CatalogError):
        load(tmp_path)


def test_components_follow_prerequisites_either_way(tmp_path: Path) -> None:
    make(tmp_path, "a")
    make(tmp_path, "b", prereqs=("a",))
    make(tmp_path, "c", track="advanced", prereqs=("b",))
    make(tmp_path, "lonely")
    groups = load(tmp_path).components()
    assert sorted(sorted(g) for g in groups) == [["a", "b", "c"], ["lonely"]]
