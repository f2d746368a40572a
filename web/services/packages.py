"""Exercise packages: the library's rows, uploads, validation (again) and publishing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from grader.events import Event
from grader.jobs import packages as jobpackages
from grader.jobs import queue as jobqueue
from grader.library import package_root, store_archive
from grader.store import (
    ExercisePackage,
    ExerciseVersion,
    PackageState,
    Submission,
    User,
    transaction,
)
from grader.store.models import utcnow
from web.services.base import Web
from web.services.errors import Conflict, Invalid, NotFound, Unavailable


@dataclass(frozen=True)
class ExerciseRow:
    slug: str
    title: str
    version: str
    origin: str  # "bundled" | "upload"
    validation: ExercisePackage | None  # the latest validation of the live version
    pending: list[ExercisePackage]  # uploads not published yet


def exercise_rows(web: Web) -> tuple[list[ExerciseRow], dict[str, list[str]]]:
    catalog = web.catalog()
    with web.factory() as session:
        all_packages = list(session.scalars(select(ExercisePackage).order_by(ExercisePackage.id.desc())))
    rows = []
    for exercise in catalog:
        mine = [p for p in all_packages if p.slug == exercise.slug]
        validation = next((p for p in mine if p.version == exercise.version), None)
        pending = [p for p in mine if p.state != PackageState.PUBLISHED and p.version != exercise.version]
        origin = "bundled" if exercise.directory.is_relative_to(web.settings.exercises_dir) else "upload"
        rows.append(
            ExerciseRow(exercise.slug, exercise.spec.title, exercise.version, origin, validation, pending)
        )
    known = set(catalog.exercises)
    new = [p for p in all_packages if p.slug not in known]
    for package in new:
        if not any(r.slug == package.slug for r in rows):
            rows.append(
                ExerciseRow(
                    package.slug,
                    package.title,
                    "",
                    "upload",
                    None,
                    [p for p in new if p.slug == package.slug],
                )
            )
    return rows, catalog.broken


def packages_of(web: Web, slug: str) -> list[ExercisePackage]:
    with web.factory() as session:
        return list(
            session.scalars(
                select(ExercisePackage)
                .where(ExercisePackage.slug == slug)
                .order_by(ExercisePackage.id.desc())
            )
        )


def versions_of(web: Web, slug: str) -> list[tuple[ExerciseVersion, int]]:
    """Every version students submitted to, with how many submissions each got."""
    with web.factory() as session:
        return [
            (version, count)
            for version, count in session.execute(
                select(ExerciseVersion, func.count(Submission.id))
                .outerjoin(Submission, Submission.exercise_version_id == ExerciseVersion.id)
                .where(ExerciseVersion.slug == slug)
                .group_by(ExerciseVersion.id)
                .order_by(ExerciseVersion.created_at.desc())
            ).all()
        ]


def get_package(web: Web, package_id: int) -> ExercisePackage:
    with web.factory() as session:
        row = session.get(ExercisePackage, package_id)
        if row is None:
            raise NotFound(f"package {package_id}")
        return row


def progress(web: Web, package: ExercisePackage) -> dict[str, Any] | None:
    """While a worker validates `package`, the check it is running: the event it published
    (`subject`, `current` of `total`, and `message`: "checking wrong/loop (5 of 14)"). None when
    it is not validating, or the queue cannot tell."""
    if package.state != PackageState.VALIDATING:
        return None
    try:
        raw = web.redis().get(jobpackages.progress_key(package.id))
    except (Unavailable, RedisError, OSError):
        return None
    event = Event.from_json(raw) if isinstance(raw, bytes | str) else None
    return event.to_dict() if event is not None else None


def upload(web: Web, user: User, data: bytes) -> ExercisePackage:
    """Store an uploaded zip as a new exercise version and queue its validation."""
    import shutil
    import tempfile

    from web.uploads import UploadError, UploadLimits, extract_package

    catalog = web.catalog()
    staging_parent = web.settings.data_dir / "library" / ".staging"
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_parent)) / "package"
    try:
        try:
            package = extract_package(
                data,
                staging,
                limits=UploadLimits(),
                tracks=[t.id for t in catalog.tracks],
                known=set(catalog.exercises),
            )
        except UploadError as exc:
            raise Invalid("The upload was refused: " + " ".join(exc.problems)) from None
        final = package_root(web.settings.data_dir, package.slug, package.version)
        with web.factory() as session:
            existing = session.scalar(
                select(ExercisePackage).where(
                    ExercisePackage.slug == package.slug, ExercisePackage.version == package.version
                )
            )
        if existing is not None:
            raise Conflict(
                f"this exact version of {package.slug} was uploaded already (package {existing.id})"
            )
        bundled = catalog.exercises.get(package.slug)
        if bundled is not None and bundled.version == package.version:
            raise Conflict(f"this is the version of {package.slug} students already see")
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    redis = web.redis()
    try:
        with transaction(web.factory) as session:
            row = ExercisePackage(
                slug=package.slug,
                version=package.version,
                title=package.exercise.spec.title,
                origin="upload",
                path=str(final.relative_to(web.settings.data_dir)),
                uploaded_by=user.id,
                state=PackageState.QUEUED,
                archive_sha256=store_archive(session, final),  # what workers on other hosts fetch
            )
            session.add(row)
            session.flush()
            row.job_id = jobpackages.new_job_id(row.id)
    except IntegrityError:  # the same zip, uploaded twice at once
        raise Conflict(f"this exact version of {package.slug} was uploaded already") from None
    jobqueue.enqueue_validation(redis, row.id, row.job_id)
    return row


def validate_live(web: Web, slug: str) -> ExercisePackage:
    """Queue a validation of the version students see now (a bundled exercise, say)."""
    exercise = web.exercise(slug)
    redis = web.redis()
    with transaction(web.factory) as session:
        row = session.scalar(
            select(ExercisePackage).where(
                ExercisePackage.slug == slug, ExercisePackage.version == exercise.version
            )
        )
        if row is None:
            row = ExercisePackage(
                slug=slug,
                version=exercise.version,
                title=exercise.spec.title,
                origin="bundled",
                path=None,
                state=PackageState.QUEUED,
            )
            session.add(row)
            session.flush()
            row.job_id = jobpackages.new_job_id(row.id)
            job_id = row.job_id
        else:
            job_id = None
    if job_id is None:
        _queue_again(web, row.id)  # unless it waits already: then the waiting one will do
    else:
        jobqueue.enqueue_validation(redis, row.id, job_id)
    return get_package(web, row.id)


def revalidate(web: Web, package_id: int) -> ExercisePackage:
    """Queue another validation of a package that is neither published nor waiting already."""
    get_package(web, package_id)
    if not _queue_again(web, package_id):
        raise Conflict("This package is published or already waiting for validation.")
    return get_package(web, package_id)


def _queue_again(web: Web, package_id: int) -> bool:
    """Queue a package's validation again; False when it is published or waiting already."""
    redis = web.redis()  # before the row changes: with the queue down, nothing changes
    job_id = jobpackages.requeue(web.factory, package_id)
    if job_id is None:
        return False
    jobqueue.enqueue_validation(redis, package_id, job_id)
    return True


def publish(web: Web, package_id: int) -> ExercisePackage:
    """Make a validated upload the version students see."""
    with transaction(web.factory) as session:
        row = session.get(ExercisePackage, package_id)
        if row is None:
            raise NotFound(f"package {package_id}")
        if row.state == PackageState.PUBLISHED:  # published before: make it the live one again
            row.published_at = utcnow()
            return row
        if row.state != PackageState.VALID:
            raise Conflict(f"only a validated package can be published; this one is {row.state}")
        if row.origin != "upload":
            raise Conflict("this version is the bundled one; it is live already")
        row.state = PackageState.PUBLISHED
        row.published_at = utcnow()
    catalog = web.catalog()
    if row.slug not in catalog.exercises:  # it failed to join the catalog
        problems = catalog.broken.get(row.slug, ["unknown problem"])
        with transaction(web.factory) as session:
            stored = session.get(ExercisePackage, package_id)
            assert stored is not None
            stored.state = PackageState.VALID
            stored.published_at = None
        raise Conflict("publishing would break the catalog: " + " ".join(problems))
    return row
