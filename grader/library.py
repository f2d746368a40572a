"""Which exercise version a grading uses: the bundled catalog, plus the versions instructors
uploaded and published.

Uploaded versions live under `<data_dir>/library/<slug>/<version>/` (an `exercise/` and a
`solutions/` folder, as the upload left them) and are never edited in place: a version is the
hash of its content. The live catalog is the bundled one with each slug's latest published
upload in place of (or beside) the bundled exercise. A submission is graded against the version
it was made for whenever that version is still on disk, so publishing a new version never
changes what a queued submission is judged by; a regrade asks for the live version explicitly.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog import Catalog, CatalogError, Exercise, _load_exercise, _order
from grader.store import ExercisePackage, PackageState

LIBRARY = "library"


def package_root(data_dir: Path, slug: str, version: str) -> Path:
    return data_dir / LIBRARY / slug / version


def exercise_folders(root: Path) -> tuple[Path, Path]:
    """(exercise folder, solutions folder) of a stored package: `root/exercise/<slug>` and
    `root/solutions/<slug>` (the catalog loader wants folders named after the slug)."""
    candidates = sorted(p.parent for p in (root / "exercise").glob("*/exercise.toml"))
    if len(candidates) != 1:
        raise CatalogError([f"{root}: not a stored exercise package"])
    exercise_dir = candidates[0]
    return exercise_dir, root / "solutions" / exercise_dir.name


def load_package(root: Path) -> Exercise:
    exercise_dir, solutions_dir = exercise_folders(root)
    problems: list[str] = []
    exercise = _load_exercise(exercise_dir, solutions_dir, problems)
    if exercise is None or problems:
        raise CatalogError(problems or [f"{root}: cannot be loaded"])
    return exercise


class Library:
    """The bundled catalog and the published uploads, reloaded when what is published changes."""

    def __init__(self, bundled: Catalog, data_dir: Path) -> None:
        self.bundled = bundled
        self.data_dir = data_dir
        self._lock = threading.Lock()
        self._published: tuple[tuple[str, str], ...] = ()
        self._live = bundled
        self._stored: dict[tuple[str, str], Exercise] = {}

    def stored(self, slug: str, version: str) -> Exercise | None:
        """An uploaded version kept on disk, or None."""
        key = (slug, version)
        with self._lock:
            if key in self._stored:
                return self._stored[key]
        root = package_root(self.data_dir, slug, version)
        if not root.is_dir():
            return None
        exercise = load_package(root)
        with self._lock:
            self._stored[key] = exercise
        return exercise

    def live(self, factory: sessionmaker[Session]) -> Catalog:
        """The catalog students see now."""
        with factory() as session:
            rows = session.execute(
                select(ExercisePackage.slug, ExercisePackage.version, ExercisePackage.published_at)
                .where(ExercisePackage.state == PackageState.PUBLISHED)
                .order_by(ExercisePackage.published_at)
            ).all()
        latest: dict[str, str] = {}
        for slug, version, _ in rows:
            latest[slug] = version
        published = tuple(sorted(latest.items()))
        with self._lock:
            if published == self._published:
                return self._live
        live = self._overlay(published)
        with self._lock:
            self._published, self._live = published, live
        return live

    def _overlay(self, published: tuple[tuple[str, str], ...]) -> Catalog:
        exercises = dict(self.bundled.exercises)
        broken = dict(self.bundled.broken)
        for slug, version in published:
            if self.bundled.exercises.get(slug) and self.bundled.exercises[slug].version == version:
                continue
            try:
                exercise = self.stored(slug, version)
            except CatalogError as exc:
                broken[slug] = exc.problems
                continue
            if exercise is not None:
                exercises[slug] = exercise
                broken.pop(slug, None)
        track_ids = [t.id for t in self.bundled.tracks]
        for slug, exercise in list(exercises.items()):  # a prerequisite may have gone missing
            if (
                exercise.spec.track not in track_ids
                or not set(exercise.spec.prerequisites) <= exercises.keys()
            ):
                broken[slug] = [f"{slug}: its track or a prerequisite is not in the catalog"]
                del exercises[slug]
        order, cycle = _order(exercises, track_ids)
        for slug in set(cycle):
            broken[slug] = [f"prerequisite cycle: {' -> '.join(cycle)}"]
            exercises.pop(slug, None)
        if cycle:
            order, _ = _order(exercises, track_ids)
        return dataclasses.replace(self.bundled, exercises=exercises, order=order, broken=broken)

    def exercise_at(self, factory: sessionmaker[Session], slug: str, version: str) -> Exercise:
        """The exercise a submission was made for: that exact version when it is still on disk
        (bundled or stored), else the live version of the slug."""
        bundled = self.bundled.exercises.get(slug)
        if bundled is not None and bundled.version == version:
            return bundled
        stored = self.stored(slug, version)
        if stored is not None:
            return stored
        return self.live(factory).get(slug)
