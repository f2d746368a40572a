"""The platforms registered with the tool: checking a registration before it is stored, and
pylti1p3's tool configuration read from the database.

A platform is one (issuer, client id) pair; several client ids per issuer are allowed (one LMS
with several registrations of the tool), so lookups always go by both.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict
from pylti1p3.deployment import Deployment
from pylti1p3.registration import Registration
from pylti1p3.tool_config import ToolConfAbstract
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grader.lti.keys import KeyStore
from grader.store import LtiPlatform, transaction

MAX_URL = 1000
MAX_ID = 255
_SPLIT = re.compile(r"[\s,]+")


class RegistrationError(Exception):
    """A registration that cannot be stored; `problems` says what to fix, field by field."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


class PlatformForm(BaseModel):
    """What an instructor (or `grader lti platform add`) fills in to register a platform."""

    model_config = ConfigDict(frozen=True)

    name: str = ""
    issuer: str = ""
    client_id: str = ""
    deployment_ids: str = ""  # one per line, or separated by commas
    auth_login_url: str = ""
    auth_token_url: str = ""
    key_set_url: str = ""
    auth_audience: str = ""


@dataclass(frozen=True)
class CheckedPlatform:
    name: str
    issuer: str
    client_id: str
    deployment_ids: list[str]
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    auth_audience: str | None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_problem(value: str, what: str) -> str | None:
    """Why `value` is not an HTTPS URL a platform could serve `what` at (None: it is one).
    Plain HTTP is accepted on loopback only, for trying the tool on one machine."""
    if not value:
        return f"enter the platform's {what} (an https:// URL)"
    if len(value) > MAX_URL:
        return f"the {what} is longer than {MAX_URL} characters"
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"the {what} must be a full URL starting with https:// (got {value!r})"
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return f"the {what} must use https:// (LTI 1.3 requires HTTPS); got {value!r}"
    if parts.username or parts.password:
        return f"the {what} must not carry a user name or password"
    return None


def check(form: PlatformForm) -> CheckedPlatform:
    """The registration, cleaned up; RegistrationError says every problem at once."""
    problems: dict[str, str] = {}
    issuer = form.issuer.strip()
    client_id = form.client_id.strip()
    deployments = [d for d in _SPLIT.split(form.deployment_ids.strip()) if d]
    if issuer:
        if len(issuer) > 500:
            problems["issuer"] = "the issuer is longer than 500 characters"
        elif (why := _url_problem(issuer, "issuer")) is not None:
            problems["issuer"] = why
    else:
        problems["issuer"] = (
            "enter the platform's issuer (iss), e.g. https://canvas.instructure.com for Canvas cloud"
        )
    if not client_id:
        problems["client_id"] = "enter the client id the platform gave this tool"
    elif len(client_id) > MAX_ID or any(c.isspace() for c in client_id):
        problems["client_id"] = f"a client id has no spaces and at most {MAX_ID} characters"
    if not deployments:
        problems["deployment_ids"] = "enter at least one deployment id (one per line)"
    elif any(len(d) > MAX_ID for d in deployments):
        problems["deployment_ids"] = f"a deployment id has at most {MAX_ID} characters"
    elif len(set(deployments)) != len(deployments):
        problems["deployment_ids"] = "a deployment id is listed twice"
    for key, what in (
        ("auth_login_url", "authorization (OIDC auth) URL"),
        ("auth_token_url", "access token URL"),
        ("key_set_url", "public key set (JWKS) URL"),
    ):
        if (why := _url_problem(getattr(form, key).strip(), what)) is not None:
            problems[key] = why
    audience = form.auth_audience.strip() or None
    if audience is not None and len(audience) > MAX_URL:
        problems["auth_audience"] = f"the token audience is longer than {MAX_URL} characters"
    name = form.name.strip() or (urlsplit(issuer).hostname or issuer)
    if len(name) > 200:
        problems["name"] = "the name is longer than 200 characters"
    if problems:
        raise RegistrationError(problems)
    return CheckedPlatform(
        name=name,
        issuer=issuer,
        client_id=client_id,
        deployment_ids=deployments,
        auth_login_url=form.auth_login_url.strip(),
        auth_token_url=form.auth_token_url.strip(),
        key_set_url=form.key_set_url.strip(),
        auth_audience=audience,
    )


def add(factory: sessionmaker[Session], form: PlatformForm, created_by: int | None = None) -> LtiPlatform:
    """Register a platform; RegistrationError when the form is wrong or the pair is taken."""
    checked = check(form)
    taken = RegistrationError(
        {"client_id": f"{checked.issuer} is registered already with client id {checked.client_id}"}
    )
    with factory() as session:
        if _find(session, checked.issuer, checked.client_id) is not None:
            raise taken
    try:
        with transaction(factory) as session:
            row = LtiPlatform(**checked.__dict__, enabled=True, created_by=created_by)
            session.add(row)
            session.flush()
            session.expunge(row)
            return row
    except IntegrityError:  # registered by someone else at the same moment
        raise taken from None


def update(factory: sessionmaker[Session], platform_id: int, form: PlatformForm) -> LtiPlatform:
    """Change a registration (issuer and client id included); RegistrationError as for `add`."""
    checked = check(form)
    with transaction(factory) as session:
        row = session.get(LtiPlatform, platform_id)
        if row is None:
            raise RegistrationError({"platform": f"there is no platform {platform_id}"})
        other = _find(session, checked.issuer, checked.client_id)
        if other is not None and other.id != platform_id:
            raise RegistrationError(
                {"client_id": f"{checked.issuer} is registered already with client id {checked.client_id}"}
            )
        for key, value in checked.__dict__.items():
            setattr(row, key, value)
        session.flush()
        session.expunge(row)
        return row


def set_enabled(factory: sessionmaker[Session], platform_id: int, enabled: bool) -> LtiPlatform | None:
    with transaction(factory) as session:
        row = session.get(LtiPlatform, platform_id)
        if row is None:
            return None
        row.enabled = enabled
        session.flush()
        session.expunge(row)
        return row


def platforms(factory: sessionmaker[Session]) -> list[LtiPlatform]:
    with factory() as session:
        rows = list(session.scalars(select(LtiPlatform).order_by(LtiPlatform.name, LtiPlatform.id)))
        session.expunge_all()
        return rows


def _find(session: Session, issuer: str, client_id: str) -> LtiPlatform | None:
    return session.scalar(
        select(LtiPlatform).where(LtiPlatform.issuer == issuer, LtiPlatform.client_id == client_id)
    )


def find(factory: sessionmaker[Session], issuer: str, client_id: str) -> LtiPlatform | None:
    with factory() as session:
        row = _find(session, issuer, client_id)
        if row is not None:
            session.expunge(row)
        return row


def client_ids(factory: sessionmaker[Session], issuer: str) -> list[str]:
    """The client ids registered for `issuer` (enabled or not)."""
    with factory() as session:
        return list(session.scalars(select(LtiPlatform.client_id).where(LtiPlatform.issuer == issuer)))


class ToolConfig(ToolConfAbstract[Any]):
    """pylti1p3's view of the registrations: always by issuer and client id. A disabled
    platform is found (so the refusal can say it is disabled) but the launch checks `enabled`."""

    def __init__(self, factory: sessionmaker[Session], keys: KeyStore) -> None:
        self.factory = factory
        self.keys = keys
        self.issuers_relation_types = {}

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def platform(self, iss: str, client_id: str) -> LtiPlatform | None:
        return find(self.factory, iss, client_id)

    def registration_of(self, row: LtiPlatform) -> Registration:
        key = self.keys.current()
        registration = Registration()
        registration.set_issuer(row.issuer).set_client_id(row.client_id).set_key_set_url(row.key_set_url)
        registration.set_auth_login_url(row.auth_login_url).set_auth_token_url(row.auth_token_url)
        if row.auth_audience:
            registration.set_auth_audience(row.auth_audience)
        registration.set_tool_private_key(key.private_pem).set_tool_public_key(key.public_pem)
        return registration

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Registration:
        raise NotImplementedError("registrations are looked up by issuer and client id")

    def find_registration_by_params(  # type: ignore[override]
        self, iss: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Registration | None:
        row = self.platform(iss, client_id)
        return None if row is None else self.registration_of(row)

    def find_deployment(self, iss: str, deployment_id: str) -> Deployment | None:
        raise NotImplementedError("deployments are looked up by issuer and client id")

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Deployment | None:
        row = self.platform(iss, client_id)
        if row is None or deployment_id not in row.deployment_ids:
            return None
        return Deployment().set_deployment_id(deployment_id)


def deployment_list(values: Iterable[str]) -> str:
    """Deployment ids as the form shows them: one per line."""
    return "\n".join(values)
