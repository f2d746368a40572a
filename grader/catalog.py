"""The catalog: every exercise package, validated, hashed, and ordered into a curriculum.

An exercise is two folders with the same slug:

    exercises/<slug>/   exercise.toml  README.md  skeleton.py  test_public.py     (a student may see)
    solutions/<slug>/   solution.py  test_hidden.py  wrong/*.py                    (never served)

`exercises/tracks.toml` lists the tracks in curriculum order. Loading reports every problem at
once (unknown prerequisite, cycle, missing file, bad threshold, ...) rather than the first.
"""

from __future__ import annotations

import difflib
import hashlib
import heapq
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.spec import SLUG, ExerciseSpec, format_validation_error
from grader.verdict import Status

EXERCISE_FILES = ("exercise.toml", "README.md", "skeleton.py", "test_public.py")
SOLUTION_FILES = ("solution.py", "test_hidden.py")
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
EXPECT = re.compile(r"^#\s*expect:\s*(?P<status>[a-z_]+)\s*$", re.MULTILINE)
WHY = re.compile(r"^#\s*why:\s*(?P<why>.+?)\s*$", re.MULTILINE)
CAUGHT_BY = re.compile(r"^#\s*caught-by:\s*(?P<tests>.+?)\s*$", re.MULTILINE)


class CatalogError(Exception):
    """The exercises on disk are inconsistent; `problems` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UnknownExercise(KeyError):
    def __init__(self, slug: str, known: list[str]) -> None:
        close = difflib.get_close_matches(slug, known, n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        super().__init__(f"no exercise called {slug!r}.{hint} Known: {', '.join(known) or 'none'}")
        self.slug = slug

    def __str__(self) -> str:
        return str(self.args[0])


class Track(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    summary: str = ""


class TrackFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracks: list[Track] = Field(default_factory=list)


@dataclass(frozen=True)
class WrongVariant:
    """A known-wrong solution and the verdict the hidden tests must give it."""

    path: Path
    expect: Status
    why: str
    caught_by: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Exercise:
    spec: ExerciseSpec
    directory: Path
    solution_dir: Path
    version: str
    wrong: tuple[WrongVariant, ...] = ()

    @property
    def slug(self) -> str:
        return self.spec.id

    @property
    def readme(self) -> Path:
        return self.directory / "README.md"

    @property
    def skeleton(self) -> Path:
        return self.directory / "skeleton.py"

    @property
    def public_tests(self) -> Path:
        return self.directory / "test_public.py"

    @property
    def hidden_tests(self) -> Path:
        return self.solution_dir / "test_hidden.py"

    @property
    def solution(self) -> Path:
        return self.solution_dir / "solution.py"


@dataclass
class Catalog:
    tracks: list[Track]
    exercises: dict[str, Exercise]
    order: list[str] = field(default_factory=list)
    broken: dict[str, list[str]] = field(default_factory=dict)  # left out of a lenient load

    def get(self, slug: str) -> Exercise:
        if slug in self.broken:
            raise CatalogError(self.broken[slug])
        try:
            return self.exercises[slug]
        except KeyError:
            raise UnknownExercise(slug, self.order) from None

    def __iter__(self) -> Iterator[Exercise]:
        return (self.exercises[slug] for slug in self.order)

    def by_track(self) -> list[tuple[Track, list[Exercise]]]:
        return [(t, [e for e in self if e.spec.track == t.id]) for t in self.tracks]

    def dependents(self, slug: str) -> list[str]:
        return [s for s in self.order if slug in self.exercises[s].spec.prerequisites]

    def components(self) -> list[list[str]]:
        """Groups of concepts linked by prerequisites (either way): one group is one connected
        curriculum."""
        group = {slug: slug for slug in self.order}

        def root(slug: str) -> str:
            while group[slug] != slug:
                group[slug] = group[group[slug]]
                slug = group[slug]
            return slug

        for slug in self.order:
            for prereq in self.exercises[slug].spec.prerequisites:
                if prereq in group:
                    group[root(slug)] = root(prereq)
        found: dict[str, list[str]] = {}
        for slug in self.order:
            found.setdefault(root(slug), []).append(slug)
        return list(found.values())


def load_catalog(exercises_dir: Path, solutions_dir: Path, *, strict: bool = True) -> Catalog:
    """Load and check every exercise. Strict: any problem raises CatalogError listing them all.
    Lenient: exercises with problems are left out and their problems kept in `Catalog.broken`
    (an author working on one exercise is not stopped by another one that is half-written)."""
    if not exercises_dir.is_dir():
        raise CatalogError([f"{exercises_dir}: no such directory"])
    problems: list[str] = []
    tracks = _load_tracks(exercises_dir / "tracks.toml", problems)
    if problems:
        raise CatalogError(problems)
    broken: dict[str, list[str]] = {}
    exercises: dict[str, Exercise] = {}
    for directory in sorted(p for p in exercises_dir.iterdir() if p.is_dir() and p.name not in IGNORED_PARTS):
        found: list[str] = []
        exercise = _load_exercise(directory, solutions_dir / directory.name, found)
        if exercise is None or found:
            broken[directory.name] = found
        else:
            exercises[exercise.slug] = exercise
    if solutions_dir.is_dir():
        for orphan in sorted(p.name for p in solutions_dir.iterdir() if p.is_dir()):
            if orphan not in IGNORED_PARTS and not (exercises_dir / orphan).is_dir():
                broken[orphan] = [f"{solutions_dir / orphan}: solutions for an exercise that does not exist"]
    track_ids = [t.id for t in tracks]
    for exercise in list(exercises.values()):
        where = exercise.directory / "exercise.toml"
        found = []
        if exercise.spec.track not in track_ids:
            found.append(f"{where}: track {exercise.spec.track!r} is not listed in tracks.toml")
        for prereq in exercise.spec.prerequisites:
            if prereq == exercise.slug:
                found.append(f"{where}: an exercise cannot be its own prerequisite")
            elif prereq not in exercises and not (prereq in broken and not strict):
                found.append(f"{where}: unknown prerequisite {prereq!r}")
        if found:
            broken[exercise.slug] = found
            del exercises[exercise.slug]
    order, cycle = _order(exercises, track_ids)
    if cycle:
        message = f"prerequisite cycle: {' -> '.join(cycle)}"
        for slug in set(cycle):
            broken[slug] = [message]
            exercises.pop(slug, None)
        order, _ = _order(exercises, track_ids)
    if strict and broken:
        raise CatalogError(list(dict.fromkeys(p for found in broken.values() for p in found)))
    return Catalog(tracks=tracks, exercises=exercises, order=order, broken=broken)


def _load_tracks(path: Path, problems: list[str]) -> list[Track]:
    if not path.is_file():
        problems.append(f"{path}: missing (it lists the tracks in curriculum order)")
        return []
    try:
        data = TrackFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: {exc}")
        return []
    except ValidationError as exc:
        problems.extend(f"{path}: {line}" for line in format_validation_error(exc))
        return []
    ids = [t.id for t in data.tracks]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"{path}: track {duplicate!r} is listed twice")
    return data.tracks


def _load_exercise(directory: Path, solution_dir: Path, problems: list[str]) -> Exercise | None:
    before = len(problems)
    if not SLUG.match(directory.name):
        problems.append(f"{directory}: folder name is not a slug")
    for name in EXERCISE_FILES:
        if not (directory / name).is_file():
            problems.append(f"{directory / name}: missing")
    for name in SOLUTION_FILES:
        if not (solution_dir / name).is_file():
            problems.append(f"{solution_dir / name}: missing")
    spec = _load_spec(directory / "exercise.toml", problems)
    if spec is not None and spec.id != directory.name:
        problems.append(f"{directory / 'exercise.toml'}: id {spec.id!r} differs from its folder name")
    wrong = tuple(_load_wrong(p, problems) for p in sorted((solution_dir / "wrong").glob("*.py")))
    if spec is None or len(problems) > before:
        return None
    return Exercise(
        spec=spec,
        directory=directory,
        solution_dir=solution_dir,
        version=content_hash(directory, solution_dir),
        wrong=tuple(w for w in wrong if w is not None),
    )


def _load_spec(path: Path, problems: list[str]) -> ExerciseSpec | None:
    if not path.is_file():
        return None
    try:
        return ExerciseSpec.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: {exc}")
    except ValidationError as exc:
        problems.extend(f"{path}: {line}" for line in format_validation_error(exc))
    return None


def _load_wrong(path: Path, problems: list[str]) -> WrongVariant | None:
    text = path.read_text(encoding="utf-8", errors="replace")
    expect, why, caught = EXPECT.search(text), WHY.search(text), CAUGHT_BY.search(text)
    if expect is None or why is None:
        problems.append(f"{path}: needs '# expect: <status>' and '# why: <mistake>' comment lines")
        return None
    try:
        status = Status(expect["status"])
    except ValueError:
        problems.append(f"{path}: unknown status {expect['status']!r}")
        return None
    if status in (Status.PASSED, Status.SYSTEM_ERROR):
        problems.append(f"{path}: a wrong solution cannot expect {status.value}")
        return None
    tests = tuple(t.strip() for t in caught["tests"].split(",") if t.strip()) if caught else ()
    return WrongVariant(path=path, expect=status, why=why["why"], caught_by=tests)


def _order(exercises: dict[str, Exercise], track_ids: list[str]) -> tuple[list[str], list[str]]:
    """A topological order (prerequisites first) that otherwise prefers earlier tracks, then lower
    levels; or the cycle that prevents one. `Catalog.by_track` keeps this order within a track."""
    rank = {t: i for i, t in enumerate(track_ids)}
    pending = {
        s: {p for p in e.spec.prerequisites if p in exercises and p != s} for s, e in exercises.items()
    }

    def key(slug: str) -> tuple[int, int, str]:
        spec = exercises[slug].spec
        return (rank.get(spec.track, len(rank)), spec.level, slug)

    ready = [key(s) for s, deps in pending.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        slug = heapq.heappop(ready)[2]
        order.append(slug)
        for other, deps in pending.items():
            if slug in deps:
                deps.discard(slug)
                if not deps:
                    heapq.heappush(ready, key(other))
    if len(order) == len(exercises):
        return order, []
    return order, _find_cycle({s: d for s, d in pending.items() if s not in order})


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    start = min(graph)
    path, seen = [start], {start}
    while True:
        nxt = min(d for d in graph[path[-1]] if d in graph)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)


def content_hash(*folders: Path) -> str:
    """A hash of every file of an exercise version (both folders), names and bytes."""
    digest = hashlib.sha256()
    for index, root in enumerate(folders):
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root)
            if IGNORED_PARTS.intersection(relative.parts) or path.suffix == ".pyc":
                continue
            digest.update(f"{index}/{relative.as_posix()}\0{path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
