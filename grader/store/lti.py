"""LTI 1.3 in the database: the platforms (LMSs) registered with the tool, who their users are
here, which concept each of their resource links shows, and the outbox of grades to send back.

A platform is identified by its issuer and the client id it gave this tool; a person launching
from it by (issuer, sub), mapped to one of our users. A resource link (a placement of a concept
in a course) keeps the line item its grades go to. A grade push is written in the same
transaction as the verdict that earned it and sent by a job, so a verdict never waits for an
LMS and a push is never lost.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from grader.store.models import Base, User, utcnow


class LtiPlatform(Base):
    """An LMS registered by an instructor: where to send people to log in, where its keys and
    tokens are, and which deployments of the tool it may launch from."""

    __tablename__ = "lti_platforms"
    __table_args__ = (UniqueConstraint("issuer", "client_id", name="uq_lti_platforms_issuer_client"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    deployment_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth_login_url: Mapped[str] = mapped_column(String(1000))  # the platform's OIDC authorization endpoint
    auth_token_url: Mapped[str] = mapped_column(String(1000))  # OAuth 2 token endpoint (services)
    key_set_url: Mapped[str] = mapped_column(String(1000))  # the platform's JWKS
    auth_audience: Mapped[str | None] = mapped_column(String(1000))  # token audience, when not the token URL
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)


class LtiUser(Base):
    """Who (issuer, sub) is here: the user their launches sign in as."""

    __tablename__ = "lti_users"
    __table_args__ = (
        UniqueConstraint("issuer", "sub", name="uq_lti_users_issuer_sub"),
        Index("ix_lti_users_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500))
    sub: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id"))
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(254))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    last_launch_at: Mapped[datetime.datetime | None]

    user: Mapped[User] = relationship()
    platform: Mapped[LtiPlatform] = relationship()


class LtiContext(Base):
    """A course on a platform, with the service endpoints its launches announced."""

    __tablename__ = "lti_contexts"
    __table_args__ = (UniqueConstraint("platform_id", "context_id", name="uq_lti_contexts_platform_context"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id"))
    context_id: Mapped[str] = mapped_column(String(255))
    deployment_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(500))
    memberships_url: Mapped[str | None] = mapped_column(String(1000))  # Names and Role Provisioning
    lineitems_url: Mapped[str | None] = mapped_column(String(1000))  # Assignment and Grade Services
    ags_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)

    platform: Mapped[LtiPlatform] = relationship()


class LtiResourceLink(Base):
    """A concept placed in a course: which concept a launch of this link opens, and the line
    item (grade column) its scores go to."""

    __tablename__ = "lti_resource_links"
    __table_args__ = (
        UniqueConstraint("platform_id", "resource_link_id", name="uq_lti_resource_links_platform_link"),
        Index("ix_lti_resource_links_concept", "concept"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id"))
    context_pk: Mapped[int | None] = mapped_column(ForeignKey("lti_contexts.id"))
    resource_link_id: Mapped[str] = mapped_column(String(255))
    concept: Mapped[str] = mapped_column(String(100))  # an exercise slug
    title: Mapped[str | None] = mapped_column(String(500))
    lineitem_url: Mapped[str | None] = mapped_column(String(1000))
    ags_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)

    platform: Mapped[LtiPlatform] = relationship()
    context: Mapped[LtiContext | None] = relationship()


class PushState(enum.StrEnum):
    PENDING = "pending"  # to be sent (again, after `next_attempt_at`)
    SENT = "sent"
    SUPERSEDED = "superseded"  # a newer score for the same link and person was sent first
    FAILED = "failed"  # refused by the platform, or retried too often: kept, with why


class LtiScorePush(Base):
    """A grade on its way to a platform's line item (the outbox)."""

    __tablename__ = "lti_score_pushes"
    __table_args__ = (
        Index("ix_lti_score_pushes_state_next", "state", "next_attempt_at"),
        Index("ix_lti_score_pushes_link_user", "resource_link_pk", "lti_user_pk"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_link_pk: Mapped[int] = mapped_column(ForeignKey("lti_resource_links.id"))
    lti_user_pk: Mapped[int] = mapped_column(ForeignKey("lti_users.id"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    score_given: Mapped[float]
    score_maximum: Mapped[float]
    activity_progress: Mapped[str] = mapped_column(String(32), default="Completed")
    grading_progress: Mapped[str] = mapped_column(String(32), default="FullyGraded")
    comment: Mapped[str | None] = mapped_column(Text)
    graded_at: Mapped[datetime.datetime]  # the verdict's time: the score's AGS timestamp
    state: Mapped[str] = mapped_column(String(16), default=PushState.PENDING)
    tries: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime.datetime | None]
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    resource_link: Mapped[LtiResourceLink] = relationship()
    lti_user: Mapped[LtiUser] = relationship()
