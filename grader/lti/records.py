"""What a valid launch writes: who launched (an `LtiUser` and the `User` it signs in as), the
course (`LtiContext`, with its service endpoints) and the link (`LtiResourceLink`, with the
concept it opens and its line item).

A person from an LMS becomes a user of their own, named after their name in the LMS, the
platform and a short hash of (issuer, sub), with no email and no usable password: they sign in
only through launches. Their site-wide role is always `student`, whatever the LMS calls them;
LMS roles are kept on the `LtiUser` and decide only what the LTI pages allow (deep linking).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from pylti1p3.roles import DesignerRole, StaffRole, TeacherRole, TeachingAssistantRole
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grader.lti.launch import (
    AGS_ENDPOINT,
    CONTEXT,
    CUSTOM,
    NRPS,
    RESOURCE_LINK,
    RESOURCE_LINK_REQUEST,
    ROLES,
    ValidLaunch,
)
from grader.store import LtiContext, LtiPlatform, LtiResourceLink, LtiUser, Role, User, transaction
from grader.store.models import utcnow

# a password hash no password matches (argon2 refuses to read it): LTI users log in by launch only
UNUSABLE_PASSWORD = "!lti:"
MAX_NAME = 200


@dataclass(frozen=True)
class Entry:
    """Who to sign in after a launch, and where to send them."""

    user_id: int
    lti_user_pk: int
    teaches: bool  # an instructor, administrator or content developer in the LMS
    concept: str | None  # the concept the resource link opens (None: not set up)
    resource_link_pk: int | None


def teaches(body: dict[str, Any]) -> bool:
    """Whether the launch's roles make the person a teacher of the course: an instructor, a
    teaching assistant, a content developer, or an administrator. Course (context) roles decide
    when there are any, so faculty enrolled as learners are learners in that course."""
    return any(role(body).check() for role in (TeacherRole, TeachingAssistantRole, DesignerRole, StaffRole))


def _display_name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [body.get("given_name"), body.get("family_name")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if not name:
        email = body.get("email")
        name = email.split("@")[0] if isinstance(email, str) and "@" in email else "Learner"
    return " ".join(name.split())[:120]


def user_name(platform: LtiPlatform, sub: str, body: dict[str, Any]) -> str:
    """A unique, stable-looking name: `<name> (<platform> <8 hex of sha256(iss, sub)>)`."""
    short = hashlib.sha256(f"{platform.issuer}\n{sub}".encode()).hexdigest()[:8]
    return f"{_display_name(body)} ({platform.name[:60]} {short})"[:MAX_NAME]


def _str(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _scopes(value: Any) -> list[str]:
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


def record(factory: sessionmaker[Session], launch: ValidLaunch) -> Entry:
    """Write what the launch says; retried once if a concurrent first launch of the same person
    or course wrote the same rows first."""
    try:
        return _record(factory, launch)
    except IntegrityError:
        return _record(factory, launch)


def _record(factory: sessionmaker[Session], launch: ValidLaunch) -> Entry:
    body = launch.body
    sub = str(body.get("sub"))[:255]
    now = utcnow()
    with transaction(factory) as session:
        platform = session.get(LtiPlatform, launch.platform_id)
        assert platform is not None
        person = session.scalar(select(LtiUser).where(LtiUser.issuer == launch.issuer, LtiUser.sub == sub))
        if person is None:
            user = User(
                name=user_name(platform, sub, body),
                email=None,
                password_hash=UNUSABLE_PASSWORD + secrets.token_urlsafe(24),
                role=Role.STUDENT,
            )
            session.add(user)
            session.flush()
            person = LtiUser(issuer=launch.issuer, sub=sub, user_id=user.id, platform_id=platform.id)
            session.add(person)
        person.platform_id = platform.id
        person.name = _str(body.get("name"), 255) or person.name
        person.email = _str(body.get("email"), 254) or person.email
        person.roles = _scopes(body.get(ROLES))
        person.last_launch_at = now
        session.flush()

        context = _context(session, platform, launch, now)
        concept: str | None = None
        link_pk: int | None = None
        if launch.message_type == RESOURCE_LINK_REQUEST:
            link = _resource_link(session, platform, context, body, now)
            if link is not None:
                concept, link_pk = link.concept, link.id
        return Entry(
            user_id=person.user_id,
            lti_user_pk=person.id,
            teaches=teaches(body),
            concept=concept,
            resource_link_pk=link_pk,
        )


def _context(session: Session, platform: LtiPlatform, launch: ValidLaunch, now: Any) -> LtiContext | None:
    claim = launch.body.get(CONTEXT)
    if not isinstance(claim, dict) or not isinstance(claim.get("id"), str) or not claim["id"]:
        return None
    context_id = claim["id"][:255]
    row = session.scalar(
        select(LtiContext).where(LtiContext.platform_id == platform.id, LtiContext.context_id == context_id)
    )
    if row is None:
        row = LtiContext(platform_id=platform.id, context_id=context_id, deployment_id=launch.deployment_id)
        session.add(row)
    row.deployment_id = launch.deployment_id[:255]
    row.title = _str(claim.get("title"), 500) or _str(claim.get("label"), 500) or row.title
    nrps = launch.body.get(NRPS)
    if isinstance(nrps, dict) and (url := _str(nrps.get("context_memberships_url"), 1000)):
        row.memberships_url = url
    ags = launch.body.get(AGS_ENDPOINT)
    if isinstance(ags, dict):
        row.lineitems_url = _str(ags.get("lineitems"), 1000) or row.lineitems_url
        row.ags_scopes = _scopes(ags.get("scope"))
    row.updated_at = now
    session.flush()
    return row


def _resource_link(
    session: Session, platform: LtiPlatform, context: LtiContext | None, body: dict[str, Any], now: Any
) -> LtiResourceLink | None:
    claim = body.get(RESOURCE_LINK)
    link_id = claim.get("id") if isinstance(claim, dict) else None
    if not isinstance(link_id, str) or not link_id:
        return None
    row = session.scalar(
        select(LtiResourceLink).where(
            LtiResourceLink.platform_id == platform.id, LtiResourceLink.resource_link_id == link_id[:255]
        )
    )
    custom = body.get(CUSTOM)
    concept = _str(custom.get("concept"), 100) if isinstance(custom, dict) else None
    if row is None:
        if concept is None:
            return None
        row = LtiResourceLink(platform_id=platform.id, resource_link_id=link_id[:255], concept=concept)
        session.add(row)
    elif concept is not None:
        row.concept = concept
    row.context_pk = context.id if context is not None else row.context_pk
    assert isinstance(claim, dict)
    row.title = _str(claim.get("title"), 500) or row.title
    ags = body.get(AGS_ENDPOINT)
    if isinstance(ags, dict):
        row.lineitem_url = _str(ags.get("lineitem"), 1000) or row.lineitem_url
        row.ags_scopes = _scopes(ags.get("scope"))
    row.updated_at = now
    session.flush()
    return row
