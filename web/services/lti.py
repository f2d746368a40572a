"""LTI 1.3 for the web tier: the tool's URLs and keys, the login and the launch, the one-use
links that move a launch from the LMS's frame to a window of its own, and deep linking.

Everything here blocks (the database, Redis, the platform's key set over HTTPS): routes call it
through the threadpool. A refusal is a `LaunchRefused`, which the route renders as a page that
says why and what the LMS admin should check.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from grader.lti import deeplink, records, registry
from grader.lti.adapters import StarletteLtiRequest
from grader.lti.keys import KeyStore
from grader.lti.launch import (
    DEEP_LINKING_REQUEST,
    LaunchRefused,
    Refusal,
    ValidLaunch,
    check_launch,
    login_redirect,
)
from grader.lti.tool import ToolUrls
from grader.store import User
from web.services.base import Web
from web.services.errors import NotFound

log = logging.getLogger("grader.web.lti")
ENTRY_S = 120  # how long a link that opens the tool in a new window works
_ENTRY = "lti:enter:"


def urls(web: Web, request_base: str) -> ToolUrls:
    """The tool's LTI URLs: under GRADER_PUBLIC_URL when set (behind a proxy that terminates
    TLS), else under the address the request came to."""
    return ToolUrls.of(web.settings.public_url or request_base)


def keys(web: Web) -> KeyStore:
    return KeyStore(web.settings.data_dir)


def tool_config(web: Web) -> registry.ToolConfig:
    return registry.ToolConfig(web.factory, keys(web))


def login(web: Web, request: StarletteLtiRequest, tool: ToolUrls) -> Response:
    return login_redirect(request, tool_config(web), web.redis(), tool.launch)


@dataclass(frozen=True)
class ConceptLaunch:
    """A resource link launch: sign `user_id` in and open `concept`."""

    user_id: int
    concept: str


@dataclass(frozen=True)
class PickerLaunch:
    """A deep-linking request from an instructor: show the picker with `token`."""

    user_id: int
    token: str


def launch(web: Web, request: StarletteLtiRequest) -> ConceptLaunch | PickerLaunch:
    """Check the posted launch and write what it says; LaunchRefused when it must not go on."""
    valid: ValidLaunch = check_launch(request, tool_config(web), web.redis())
    entry = records.record(web.factory, valid)
    if valid.message_type == DEEP_LINKING_REQUEST:
        if not entry.teaches:
            raise LaunchRefused(Refusal.NOT_INSTRUCTOR, f"lti user {entry.lti_user_pk} has no teaching role")
        return PickerLaunch(entry.user_id, deeplink.hold(web.redis(), valid, entry.user_id))
    if entry.concept is None:
        raise LaunchRefused(Refusal.NO_CONCEPT, "the resource link has no concept and no custom concept")
    try:
        web.exercise(entry.concept)
    except NotFound:
        raise LaunchRefused(Refusal.NO_CONCEPT, f"concept {entry.concept!r} does not exist") from None
    log.info("LTI launch: platform %s, user %s, concept %s", valid.platform_id, entry.user_id, entry.concept)
    return ConceptLaunch(entry.user_id, entry.concept)


def user(web: Web, user_id: int) -> User:
    with web.factory() as session:
        row = session.get(User, user_id)
        if row is None:
            raise NotFound("user")
        session.expunge(row)
        return row


class _Entry(BaseModel):
    user_id: int
    path: str


def entry_link(web: Web, user_id: int, path: str) -> str:
    """A one-use token (two minutes) that signs `user_id` in and opens `path` in a new window."""
    token = secrets.token_urlsafe(32)
    web.redis().set(_ENTRY + token, _Entry(user_id=user_id, path=path).model_dump_json(), ex=ENTRY_S)
    return token


def take_entry(web: Web, token: str) -> tuple[User, str]:
    """The user and page of a one-use token, used up; LaunchRefused when unknown or expired."""
    raw = web.redis().getdel(_ENTRY + token) if 0 < len(token) <= 100 else None
    if raw is None:
        raise LaunchRefused(Refusal.LINK_EXPIRED, "entry token unknown, used or expired")
    try:
        entry = _Entry.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise LaunchRefused(Refusal.LINK_EXPIRED, "entry token unreadable") from None
    return user(web, entry.user_id), entry.path


@dataclass(frozen=True)
class ConceptChoice:
    slug: str
    title: str
    track: str


def concept_choices(web: Web) -> list[ConceptChoice]:
    """Every concept an instructor may place, by track."""
    return [
        ConceptChoice(slug=exercise.slug, title=exercise.spec.title, track=track.title)
        for track, exercises in web.catalog().by_track()
        for exercise in exercises
    ]


def pending(web: Web, token: str) -> deeplink.PendingDeepLink:
    found = deeplink.peek(web.redis(), token)
    if found is None:
        raise LaunchRefused(Refusal.LINK_EXPIRED, "deep linking token unknown or expired")
    return found


@dataclass(frozen=True)
class DeepLinkAnswer:
    return_url: str
    jwt: str
    title: str


def select(web: Web, token: str, slug: str, tool: ToolUrls) -> DeepLinkAnswer:
    """The signed response placing `slug`; the waiting request is used up."""
    exercise = web.exercise(slug)  # NotFound for an unknown concept, before the token is spent
    found = deeplink.take(web.redis(), token)
    if found is None:
        raise LaunchRefused(Refusal.LINK_EXPIRED, "deep linking token unknown, used or expired")
    signed = deeplink.response_jwt(found, keys(web).current(), tool.launch, slug, exercise.spec.title)
    log.info("deep linking: placed %s for platform %s", slug, found.platform_id)
    return DeepLinkAnswer(deeplink.return_url(found), signed, exercise.spec.title)
