"""Exercise packages through the queue: an uploaded version is validated by a worker (the
reference passes, the skeleton fails, every known-wrong variant is rejected) before an
instructor may publish it. Each step is a compare-and-set on the package's state."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from grader.store import ExercisePackage, PackageState, transaction
from grader.store.models import utcnow

JOB_FUNCTION = "grader.jobs.worker.validate_job"


def new_job_id(package_id: int) -> str:
    return f"package-{package_id}-{uuid.uuid4().hex[:8]}"


def channel_key(package_id: int) -> str:
    """The progress channel's key: packages share the submissions' channel prefix."""
    return f"package-{package_id}"


PROGRESS_TTL_S = 6 * 3600  # a worker that died mid-validation leaves its last check this long


def progress_key(package_id: int) -> str:
    """Where the check a worker is running on the package is kept while it validates (as the
    event it published), for pages opened meanwhile."""
    return f"grader:package-progress:{package_id}"


def claim(factory: sessionmaker[Session], package_id: int, job_id: str) -> bool:
    with transaction(factory) as session:
        result = session.execute(
            update(ExercisePackage)
            .where(
                ExercisePackage.id == package_id,
                ExercisePackage.state == PackageState.QUEUED,
                ExercisePackage.job_id == job_id,
            )
            .values(state=PackageState.VALIDATING)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(
    factory: sessionmaker[Session], package_id: int, state: PackageState, report: dict[str, Any], message: str
) -> None:
    with transaction(factory) as session:
        session.execute(
            update(ExercisePackage)
            .where(ExercisePackage.id == package_id, ExercisePackage.state == PackageState.VALIDATING)
            .values(state=state, report=report, message=message, validated_at=utcnow())
        )


def requeue(factory: sessionmaker[Session], package_id: int) -> str | None:
    """Validate again (after an error, a lost job, or a worker lost mid-validation); the new job
    id, or None when the package is published."""
    job_id = new_job_id(package_id)
    with transaction(factory) as session:
        result = session.execute(
            update(ExercisePackage)
            .where(
                ExercisePackage.id == package_id,
                ExercisePackage.state.in_(
                    (
                        PackageState.QUEUED,
                        PackageState.VALIDATING,
                        PackageState.ERROR,
                        PackageState.INVALID,
                        PackageState.VALID,
                    )
                ),
            )
            .values(state=PackageState.QUEUED, job_id=job_id, report=None, message=None)
        )
        return job_id if result.rowcount else None  # type: ignore[attr-defined]


def lost(factory: sessionmaker[Session], older_than_s: float) -> list[int]:
    """Packages queued for validation longer than `older_than_s` (their job may be gone)."""
    cutoff = utcnow() - datetime.timedelta(seconds=older_than_s)
    with factory() as session:
        return list(
            session.scalars(
                select(ExercisePackage.id).where(
                    ExercisePackage.state == PackageState.QUEUED, ExercisePackage.created_at < cutoff
                )
            )
        )
