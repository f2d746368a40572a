"""Deep linking: an instructor picks a concept and the tool answers the platform with a signed
`LtiDeepLinkingResponse` holding one `ltiResourceLink` that opens it.

The link carries `custom: {"concept": slug}` (which concept later launches open) and a
`lineItem` (`scoreMaximum` 1, the concept's title, `resourceId` the slug), so the platform makes
a grade column and names it in the AGS claim of later launches. The response is signed with the
tool's current key (its `kid` in the header), as pylti1p3 builds it.

Between the picker and the choice, the deep-linking request waits in Redis under a random
single-use token that the picker's form carries (no cookie needed: the picker may be inside the
LMS's frame, where cookies can be blocked).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, ValidationError
from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem
from pylti1p3.registration import Registration
from redis import Redis

from grader.lti.keys import ToolKey
from grader.lti.launch import DEEP_LINKING_SETTINGS, LaunchRefused, Refusal, ValidLaunch

PENDING_S = 3600  # how long the picker stays usable after the instructor's launch
_KEY = "lti:deeplink:"


class PendingDeepLink(BaseModel):
    """A verified deep-linking request, waiting for the instructor's choice."""

    model_config = ConfigDict(frozen=True)

    platform_id: int
    issuer: str
    client_id: str
    deployment_id: str
    settings: dict[str, Any]
    user_id: int


def hold(redis: Redis, launch: ValidLaunch, user_id: int) -> str:
    """Keep the request for the picker; the token its form sends back."""
    settings = launch.body.get(DEEP_LINKING_SETTINGS)
    if not isinstance(settings, dict) or not isinstance(settings.get("deep_link_return_url"), str):
        raise LaunchRefused(Refusal.MESSAGE, "deep linking request without deep_link_return_url")
    pending = PendingDeepLink(
        platform_id=launch.platform_id,
        issuer=launch.issuer,
        client_id=launch.client_id,
        deployment_id=launch.deployment_id,
        settings=settings,
        user_id=user_id,
    )
    token = secrets.token_urlsafe(32)
    redis.set(_KEY + token, pending.model_dump_json(), ex=PENDING_S)
    return token


def peek(redis: Redis, token: str) -> PendingDeepLink | None:
    raw = redis.get(_KEY + token) if 0 < len(token) <= 100 else None
    return _parse(raw)


def take(redis: Redis, token: str) -> PendingDeepLink | None:
    """The waiting request, removed (a choice is sent once); None when unknown or expired."""
    raw = redis.getdel(_KEY + token) if 0 < len(token) <= 100 else None
    return _parse(raw)


def _parse(raw: Any) -> PendingDeepLink | None:
    if raw is None:
        return None
    try:
        return PendingDeepLink.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None


def response_jwt(pending: PendingDeepLink, key: ToolKey, launch_url: str, slug: str, title: str) -> str:
    """The signed deep-linking response that places concept `slug`."""
    registration = Registration()
    registration.set_issuer(pending.issuer).set_client_id(pending.client_id)
    registration.set_tool_private_key(key.private_pem).set_tool_public_key(key.public_pem)
    line_item = LineItem().set_score_maximum(1).set_label(title).set_resource_id(slug)
    resource = (
        DeepLinkResource()
        .set_url(launch_url)
        .set_title(title)
        .set_custom_params({"concept": slug})
        .set_lineitem(line_item)
    )
    link = DeepLink(registration, pending.deployment_id, pending.settings)  # type: ignore[arg-type]
    message = link.get_message_jwt([resource])
    if message.get("https://purl.imsglobal.org/spec/lti-dl/claim/data") is None:
        del message["https://purl.imsglobal.org/spec/lti-dl/claim/data"]
    encoded: str = jwt.encode(message, key.private_pem, algorithm="RS256", headers={"kid": key.kid})
    return encoded


def return_url(pending: PendingDeepLink) -> str:
    return str(pending.settings["deep_link_return_url"])
