"""The database: who submitted what, for which exercise version, and what it earned.

The submission row is the source of truth for grading. It moves `queued -> running -> done`, or
to `system_error` once the grader has failed it too often; `attempt` counts deliveries and every
write that changes a submission compares it, so an old or duplicate delivery never overwrites a
newer one. Timestamps are naive UTC (SQLite keeps no time zones).
"""

from __future__ import annotations

import datetime
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from grader.events import SubmissionState


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Role(enum.StrEnum):
    STUDENT = "student"
    INSTRUCTOR = "instructor"
    ADMIN = "admin"

    @property
    def teaches(self) -> bool:
        return self is not Role.STUDENT


class User(Base):
    """Someone who submits. `name` is unique (the CLI's `--user`); people who sign up on the web
    also have an email and a password hash (argon2), a role and a plan."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("email", name="uq_users_email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.STUDENT, server_default=Role.STUDENT.value)
    plan: Mapped[str] = mapped_column(String(8), default="free", server_default="free")

    submissions: Mapped[list[Submission]] = relationship(back_populates="user")
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    """A per-user token for the JSON API. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown to tell tokens apart
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime.datetime | None]
    revoked_at: Mapped[datetime.datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


class PackageState(enum.StrEnum):
    QUEUED = "queued"  # waiting for a worker to validate it
    VALIDATING = "validating"
    VALID = "valid"  # reference passes, skeleton fails, every wrong variant rejected
    INVALID = "invalid"
    ERROR = "error"  # validation could not run (ours)
    PUBLISHED = "published"  # the version students see


class ExercisePackage(Base):
    """An exercise version an instructor uploaded (or asked to validate), stored under the data
    directory and validated through the queue before it can be published."""

    __tablename__ = "exercise_packages"
    __table_args__ = (
        Index("ix_exercise_packages_slug", "slug"),
        UniqueConstraint("slug", "version", name="uq_exercise_packages_slug_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(16))  # "upload" | "bundled"
    path: Mapped[str | None] = mapped_column(String(500))  # relative to the data directory
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(16), default=PackageState.QUEUED)
    report: Mapped[dict[str, Any] | None]
    message: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    validated_at: Mapped[datetime.datetime | None]
    published_at: Mapped[datetime.datetime | None]
    # the stored archive of an upload (`PackageArchive`), from which a worker on any host
    # rebuilds the package; None for bundled versions, which every host has
    archive_sha256: Mapped[str | None] = mapped_column(ForeignKey("package_archives.sha256"))

    uploader: Mapped[User | None] = relationship()


class PackageArchive(Base):
    """An uploaded exercise version's files as one archive (a reproducible tar.gz of its
    `exercise/` and `solutions/` folders), named by the SHA-256 of its bytes. Workers need no
    shared disk: they fetch the archive, check its hash and the version's content hash, and keep
    the unpacked package in their own data directory."""

    __tablename__ = "package_archives"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)


class ExerciseVersion(Base):
    """One version of an exercise, identified by the hash of its whole content."""

    __tablename__ = "exercise_versions"
    __table_args__ = (UniqueConstraint("slug", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    resources: Mapped[str] = mapped_column(String(8))  # "cpu" | "gpu"
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_state_lease", "state", "lease_expires_at"),
        Index("ix_submissions_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    exercise_version_id: Mapped[int] = mapped_column(ForeignKey("exercise_versions.id"))
    filename: Mapped[str] = mapped_column(String(255))
    source: Mapped[bytes] = mapped_column(LargeBinary)
    queue: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8), default="submit", server_default="submit")  # or "public"
    state: Mapped[str] = mapped_column(String(16), default=SubmissionState.QUEUED)
    attempt: Mapped[int] = mapped_column(default=1)
    job_id: Mapped[str | None] = mapped_column(String(64))
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime.datetime | None]
    status: Mapped[str | None] = mapped_column(String(32))  # the verdict's status, once done
    verdict: Mapped[dict[str, Any] | None]
    message: Mapped[str | None] = mapped_column(Text)  # why, for a system_error
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime.datetime | None]
    finished_at: Mapped[datetime.datetime | None]
    queued_s: Mapped[float | None]  # from creation to the start of the attempt that finished
    grading_s: Mapped[float | None]  # that attempt's grading time

    user: Mapped[User | None] = relationship(back_populates="submissions")
    exercise_version: Mapped[ExerciseVersion] = relationship()
    attempts: Mapped[list[Attempt]] = relationship(back_populates="submission", order_by="Attempt.number")


class Attempt(Base):
    """One delivery of a submission to a worker, kept for the record (how it ended, where)."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("submission_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"))
    number: Mapped[int]
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime.datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(32))  # verdict status, "lost", "retried"
    message: Mapped[str | None] = mapped_column(Text)

    submission: Mapped[Submission] = relationship(back_populates="attempts")
