"""Calls to a platform's LTI Advantage services: the access token (OAuth 2 client credentials
with a signed JWT client assertion, RFC 7523), Assignment and Grade Services scores, and Names
and Role Provisioning memberships.

Every call is blocking (httpx, each on its own connection, closed at once) with a timeout; the
web app calls these from its threadpool and the outbox from its RQ job. A failure is a
`ServiceError` that says whether trying again later may help (a 5xx, a 429 with its
Retry-After, a connection error) or not (any other 4xx, with the platform's answer), so the
outbox can decide between a retry and a failure.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import ssl
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from redis import Redis
from redis.exceptions import RedisError

from grader.lti.keys import KeyStore
from grader.store import LtiPlatform

SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
MEMBERSHIPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
MEMBERSHIPS_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_TTL_S = 300
TIMEOUT_S = 15.0
TOKEN_MARGIN_S = 60  # a cached token is dropped this long before the platform says it expires
TOKEN_PREFIX = "grader:lti:token:"
MAX_PAGES = 200  # a platform whose `next` links never end is stopped here
ANSWER_CHARS = 500  # how much of a platform's refusal is kept


class ServiceError(Exception):
    """A platform's service refused a call or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Score:
    """One AGS score (`application/vnd.ims.lis.v1.score+json`)."""

    user_id: str  # the person's LTI `sub`
    score_given: float
    score_maximum: float
    timestamp: datetime.datetime  # when it was earned (the verdict's time)
    activity_progress: str = "Completed"
    grading_progress: str = "FullyGraded"
    comment: str | None = None

    def to_json(self) -> dict[str, Any]:
        stamp = self.timestamp
        if stamp.tzinfo is None:  # the database keeps UTC without an offset
            stamp = stamp.replace(tzinfo=datetime.UTC)
        body: dict[str, Any] = {
            "userId": self.user_id,
            "scoreGiven": self.score_given,
            "scoreMaximum": self.score_maximum,
            "activityProgress": self.activity_progress,
            "gradingProgress": self.grading_progress,
            "timestamp": stamp.isoformat(timespec="milliseconds"),
        }
        if self.comment:
            body["comment"] = self.comment
        return body


@dataclass(frozen=True)
class Member:
    """One person of a course, as the platform's Names and Role Provisioning lists them."""

    user_id: str  # their LTI `sub`
    name: str | None
    email: str | None
    roles: list[str] = field(default_factory=list)
    status: str = "Active"

    @property
    def role_names(self) -> list[str]:
        """The roles without their vocabulary prefix (`...#Learner` -> `Learner`)."""
        return [r.rsplit("#", 1)[-1].rsplit("/", 1)[-1] for r in self.roles]


def scores_url(lineitem_url: str) -> str:
    """`<lineitem>/scores`, keeping a query string the line item's URL may carry."""
    path, sep, query = lineitem_url.partition("?")
    return f"{path.rstrip('/')}/scores{sep}{query}"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _answer(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:ANSWER_CHARS] + ("…" if len(text) > ANSWER_CHARS else "")


def _refusal(what: str, response: httpx.Response) -> ServiceError:
    status = response.status_code
    retryable = status == 429 or status >= 500
    wait = retry_after(response.headers.get("Retry-After")) if retryable else None
    answer = _answer(response)
    message = f"{what}: the platform answered {status} {response.reason_phrase}".rstrip()
    if answer:
        message += f": {answer}"
    return ServiceError(message, status=status, retryable=retryable, retry_after_s=wait)


class Services:
    """A client of the services of the platforms registered here, signing as the tool's
    current key. `redis` caches the access tokens (None: no cache); `verify` is whom to trust:
    True for the usual authorities (or the file SSL_CERT_FILE names), else a CA file's path."""

    def __init__(
        self,
        keys: KeyStore,
        redis: Redis | None = None,
        *,
        timeout_s: float = TIMEOUT_S,
        verify: bool | str = True,
    ) -> None:
        self.keys = keys
        self.redis = redis
        self.timeout_s = timeout_s
        self.verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request on its own connection, read in full and closed."""
        with httpx.Client(verify=self.verify, timeout=self.timeout_s) as client:
            response = client.request(method, url, **kwargs)
            response.read()
            return response

    # --- the token --------------------------------------------------------------------------

    def client_assertion(self, platform: LtiPlatform) -> str:
        """The signed JWT that authenticates this tool at the platform's token endpoint."""
        key = self.keys.current()
        now = int(time.time())
        claims = {
            "iss": platform.client_id,
            "sub": platform.client_id,
            "aud": platform.auth_audience or platform.auth_token_url,
            "iat": now,
            "exp": now + ASSERTION_TTL_S,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})

    def _cache_key(self, platform: LtiPlatform, scopes: Sequence[str]) -> str:
        who = "\n".join([platform.issuer, platform.client_id, platform.auth_token_url, *sorted(scopes)])
        return TOKEN_PREFIX + hashlib.sha256(who.encode()).hexdigest()[:32]

    def token(self, platform: LtiPlatform, scopes: Sequence[str], *, fresh: bool = False) -> str:
        """An access token for `scopes`, from the cache unless `fresh` or expired."""
        cache_key = self._cache_key(platform, scopes)
        if self.redis is not None and not fresh:
            try:
                cached = self.redis.get(cache_key)
            except RedisError:
                cached = None
            if cached:
                return cached.decode() if isinstance(cached, bytes) else str(cached)
        what = f"the token endpoint of {platform.issuer}"
        try:
            response = self._send(
                "POST",
                platform.auth_token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": self.client_assertion(platform),
                    "scope": " ".join(scopes),
                },
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ServiceError(f"{what} cannot be reached: {exc}", retryable=True) from None
        if response.status_code != 200:
            raise _refusal(what, response)
        try:
            body = response.json()
            access = str(body["access_token"])
            expires_in = int(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise ServiceError(f"{what} answered without an access token: {_answer(response)}") from None
        if self.redis is not None:
            ttl = expires_in - TOKEN_MARGIN_S
            if ttl > 0:
                try:
                    self.redis.set(cache_key, access, ex=ttl)
                except RedisError:
                    pass
        return access

    def forget_token(self, platform: LtiPlatform, scopes: Sequence[str]) -> None:
        if self.redis is not None:
            try:
                self.redis.delete(self._cache_key(platform, scopes))
            except RedisError:
                pass

    def _call(
        self,
        method: str,
        url: str,
        platform: LtiPlatform,
        scopes: Sequence[str],
        what: str,
        headers: dict[str, str],
        **kwargs: Any,
    ) -> httpx.Response:
        """One authorised call; a 401 with a cached token fetches a new token and tries once more."""
        for fresh in (False, True):
            authorised = {**headers, "Authorization": f"Bearer {self.token(platform, scopes, fresh=fresh)}"}
            try:
                response = self._send(method, url, headers=authorised, **kwargs)
            except httpx.HTTPError as exc:
                raise ServiceError(f"{what} cannot be reached: {exc}", retryable=True) from None
            if response.status_code == 401 and not fresh:
                self.forget_token(platform, scopes)
                continue
            if response.status_code >= 300:
                raise _refusal(what, response)
            return response
        raise AssertionError("unreachable")

    # --- Assignment and Grade Services ------------------------------------------------------

    def post_score(self, platform: LtiPlatform, lineitem_url: str, score: Score) -> dict[str, Any]:
        """POST `score` to the line item; returns what the platform answered (JSON, if any)."""
        response = self._call(
            "POST",
            scores_url(lineitem_url),
            platform,
            [SCORE_SCOPE],
            f"the scores of {lineitem_url}",
            {"Content-Type": SCORE_TYPE},
            json=score.to_json(),
        )
        answer: dict[str, Any] = {"status": response.status_code}
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            answer["body"] = body
        return answer

    # --- Names and Role Provisioning --------------------------------------------------------

    def members(self, platform: LtiPlatform, memberships_url: str) -> list[Member]:
        """Every member of the course, following the `next` links page by page."""
        members: list[Member] = []
        url: str | None = memberships_url
        seen: set[str] = set()
        what = f"the course's members at {platform.issuer}"
        while url and url not in seen:
            if len(seen) >= MAX_PAGES:
                raise ServiceError(f"{what}: more than {MAX_PAGES} pages; stopped")
            seen.add(url)
            response = self._call(
                "GET", url, platform, [MEMBERSHIPS_SCOPE], what, {"Accept": MEMBERSHIPS_TYPE}
            )
            try:
                body = response.json()
                rows = body.get("members", []) if isinstance(body, dict) else None
            except ValueError:
                rows = None
            if not isinstance(rows, list):
                raise ServiceError(f"{what}: the platform's answer is not a membership container")
            for row in rows:
                if isinstance(row, dict) and row.get("user_id"):
                    members.append(
                        Member(
                            user_id=str(row["user_id"]),
                            name=row.get("name")
                            or " ".join(p for p in (row.get("given_name"), row.get("family_name")) if p)
                            or None,
                            email=row.get("email"),
                            roles=[str(r) for r in row.get("roles") or []],
                            status=str(row.get("status") or "Active"),
                        )
                    )
            url = response.links.get("next", {}).get("url")
        return members
