"""Which exercise version a grading uses: the bundled catalog, plus the versions instructors
uploaded and published.

An uploaded version is kept in the database as an archive named by its SHA-256
(`grader.archive`, table `package_archives`), and unpacked under
`<data_dir>/library/<slug>/<version>/` (an `exercise/` and a `solutions/` folder) on each host
that needs it: the web host at upload, a worker on first use, after checking the archive's hash
and the version's content hash. Hosts share no disk; a version is never edited in place (it is
the hash of its content). The live catalog is the bundled one with each slug's latest published
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

from grader import archive
from grader.catalog import Catalog, CatalogError, Exercise, _load_exercise, _order, content_hash
from grader.store import ExercisePackage, PackageArchive, PackageState

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

    def stored(
        self, slug: str, version: str, factory: sessionmaker[Session] | None = None
    ) -> Exercise | None:
        """An uploaded version: this host's copy when it holds (its content is that version),
        else fetched from the database's archive (`factory`) and unpacked; None when neither
        has it."""
        key = (slug, version)
        with self._lock:
            if key in self._stored:
                return self._stored[key]
        root = package_root(self.data_dir, slug, version)
        if root.is_dir() and not _holds(root, version):
            _set_aside(root)  # a damaged or tampered copy: fetched again below
        if not root.is_dir():
            if factory is None or not fetch(factory, slug, version, root):
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
        live = self._overlay(published, factory)
        with self._lock:
            self._published, self._live = published, live
        return live

    def _overlay(self, published: tuple[tuple[str, str], ...], factory: sessionmaker[Session]) -> Catalog:
        exercises = dict(self.bundled.exercises)
        broken = dict(self.bundled.broken)
        for slug, version in published:
            if self.bundled.exercises.get(slug) and self.bundled.exercises[slug].version == version:
                continue
            try:
                exercise = self.stored(slug, version, factory)
            except (CatalogError, archive.ArchiveError) as exc:
                broken[slug] = exc.problems if isinstance(exc, CatalogError) else [str(exc)]
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
        """The exercise a submission was made for: that exact version when this host has it or
        the database holds its archive (bundled or uploaded), else the live version of the slug
        (a bundled version that a newer release of the grader replaced)."""
        bundled = self.bundled.exercises.get(slug)
        if bundled is not None and bundled.version == version:
            return bundled
        stored = self.stored(slug, version, factory)
        if stored is not None:
            return stored
        return self.live(factory).get(slug)


def _holds(root: Path, version: str) -> bool:
    try:
        return content_hash(*exercise_folders(root)) == version
    except CatalogError:
        return False


def _set_aside(root: Path) -> None:
    import shutil
    import uuid

    aside = root.with_name(f".damaged-{root.name}-{uuid.uuid4().hex[:8]}")
    try:
        root.rename(aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def store_archive(session: Session, root: Path) -> str:
    """Pack the package at `root` and keep its archive (once per content); its SHA-256."""
    data = archive.pack(root)
    digest = archive.sha256(data)
    if session.get(PackageArchive, digest) is None:
        session.add(PackageArchive(sha256=digest, size=len(data), data=data))
        session.flush()
    return digest


def fetch(factory: sessionmaker[Session], slug: str, version: str, root: Path) -> bool:
    """Unpack the archive of (slug, version) from the database to `root`; False when the
    database has none. Raises ArchiveError for an archive that fails its checks."""
    with factory() as session:
        row = session.execute(
            select(PackageArchive.sha256, PackageArchive.data)
            .join(ExercisePackage, ExercisePackage.archive_sha256 == PackageArchive.sha256)
            .where(ExercisePackage.slug == slug, ExercisePackage.version == version)
            .limit(1)
        ).first()
    if row is None:
        return False
    archive.unpack(row.data, row.sha256, root, version)
    return True


def backfill_archives(factory: sessionmaker[Session], data_dir: Path) -> list[str]:
    """Store archives for uploads kept only on this host's disk (made before archives were
    kept in the database); what could not be stored, with why."""
    problems: list[str] = []
    with factory() as session:
        rows = session.execute(
            select(
                ExercisePackage.id, ExercisePackage.slug, ExercisePackage.version, ExercisePackage.path
            ).where(ExercisePackage.origin == "upload", ExercisePackage.archive_sha256.is_(None))
        ).all()
    for package_id, slug, version, path in rows:
        root = data_dir / path if path else package_root(data_dir, slug, version)
        if not root.is_dir() or not _holds(root, version):
            problems.append(f"package {package_id} ({slug} {version}): its files are not in {root}")
            continue
        with factory.begin() as session:
            digest = store_archive(session, root)
            package = session.get(ExercisePackage, package_id)
            assert package is not None
            package.archive_sha256 = digest
    return problems
