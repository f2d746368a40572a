"""The services side of the fake LMS: its OAuth 2 token endpoint, AGS line items and scores, and
NRPS memberships with paging, as one ASGI app with state the tests inspect.

The token endpoint accepts only a client assertion signed by a key in the tool's JWKS (by
default fetched from the tool's `/lti/jwks`; tests in this process pass `jwks=`), issued by
and about the registered client id, for this endpoint, unexpired and not replayed. Scores and
memberships need a token with their scope. A score is kept per line item and user as the
platform would: one with an older timestamp than the one on record is received but does not
replace it. Failures are injected per endpoint: `fail("scores", 503, times=2)`,
`fail("scores", 429, retry_after="1")`, `fail("scores", 400, body=...)`.

`make_services(platform)` builds it for a `FakePlatform` (what `tests/lti/conftest.py` calls);
`FakeServices(...)` directly for other tests.
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
MEMBERSHIPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
MEMBERSHIPS_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
PROGRESS = {"Initialized", "Started", "InProgress", "Submitted", "Completed"}
GRADING = {"FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"}


@dataclass
class Failure:
    status: int
    times: int
    retry_after: str | None = None
    body: str = ""


@dataclass
class ReceivedScore:
    lineitem: str  # the line item's id (its URL)
    body: dict[str, Any]
    token_scopes: list[str]
    content_type: str
    kept: bool  # whether it became the score on record


@dataclass
class FakeServices:
    """The app (callable as ASGI) and what it received."""

    client_id: str
    jwks: Callable[[], dict[str, Any]] | None = None  # the tool's key set; else fetched from jwks_url
    jwks_url: str | None = None
    ca: Path | None = None  # trusted when fetching jwks_url
    audience: str | None = None  # what a client assertion's `aud` must be; else this token URL
    page_size: int = 2
    token_ttl_s: int = 3600
    tokens: dict[str, list[str]] = field(default_factory=dict)  # access token -> its scopes
    assertions: list[dict[str, Any]] = field(default_factory=list)  # verified client assertions
    token_errors: list[str] = field(default_factory=list)
    received: list[ReceivedScore] = field(default_factory=list)
    scores: dict[tuple[str, str], dict[str, Any]] = field(
        default_factory=dict
    )  # (lineitem, user) -> on record
    lineitems: dict[str, dict[str, Any]] = field(default_factory=dict)  # id (URL) -> line item
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # context id -> members
    member_pages: list[str] = field(default_factory=list)  # membership URLs served
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/courses/{context}/lineitems", self._lineitems, methods=["GET", "POST"]),
                Route("/courses/{context}/lineitems/{item}", self._lineitem, methods=["GET"]),
                Route("/courses/{context}/lineitems/{item}/scores", self._score, methods=["POST"]),
                Route("/courses/{context}/memberships", self._memberships, methods=["GET"]),
            ]
        )
        self._seen_jti: set[str] = set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    # --- test helpers -------------------------------------------------------------------------

    def fail(
        self, endpoint: str, status: int, *, times: int = 1, retry_after: str | None = None, body: str = ""
    ) -> None:
        """The next `times` calls to `endpoint` ("token", "scores", "memberships") answer
        `status` (with Retry-After when given)."""
        with self.lock:
            self.failures.setdefault(endpoint, []).append(Failure(status, times, retry_after, body))

    def add_lineitem(
        self, base: str, context_id: str, label: str, resource_id: str, score_maximum: float = 1.0
    ) -> str:
        """A line item of course `context_id`; returns its URL (its id). `base` is this app's
        https://host:port."""
        item = f"{base}/courses/{context_id}/lineitems/{secrets.token_hex(4)}"
        with self.lock:
            self.lineitems[item] = {
                "id": item,
                "label": label,
                "resourceId": resource_id,
                "scoreMaximum": score_maximum,
            }
        return item

    def add_member(
        self, context_id: str, user_id: str, name: str, email: str, roles: list[str] | None = None
    ) -> None:
        with self.lock:
            self.members.setdefault(context_id, []).append(
                {
                    "status": "Active",
                    "user_id": user_id,
                    "name": name,
                    "email": email,
                    "roles": roles or [LEARNER],
                }
            )

    def scores_for(self, user_id: str) -> list[dict[str, Any]]:
        """The score bodies received for `user_id`, in order."""
        with self.lock:
            return [r.body for r in self.received if r.body.get("userId") == user_id]

    # --- failures and tokens ------------------------------------------------------------------

    def _injected(self, endpoint: str) -> Response | None:
        with self.lock:
            queue = self.failures.get(endpoint) or []
            if not queue:
                return None
            failure = queue[0]
            failure.times -= 1
            if failure.times <= 0:
                queue.pop(0)
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        body = failure.body or f"injected {failure.status}"
        return JSONResponse({"error": body}, failure.status, headers=headers)

    def _key_set(self) -> dict[str, Any]:
        if self.jwks is not None:
            return self.jwks()
        if not self.jwks_url:
            raise RuntimeError("the fake services know no key set of the tool")
        trust = ssl.create_default_context(cafile=self.ca) if self.ca else True
        response = httpx.get(self.jwks_url, verify=trust, timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _verify_assertion(self, assertion: str, token_url: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(assertion)
        keys = jwt.PyJWKSet.from_dict(self._key_set())
        key = next((k for k in keys.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise jwt.InvalidTokenError(f"no key {header.get('kid')!r} in the tool's key set")
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key.key,
            algorithms=["RS256"],
            audience=self.audience or token_url,
            issuer=self.client_id,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
        if claims["sub"] != self.client_id:
            raise jwt.InvalidTokenError("sub is not the client id")
        with self.lock:
            if claims["jti"] in self._seen_jti:
                raise jwt.InvalidTokenError("the assertion's jti was used before")
            self._seen_jti.add(claims["jti"])
        return claims

    async def _token(self, request: Request) -> Response:
        injected = self._injected("token")
        if injected is not None:
            return injected
        form = await request.form()
        token_url = str(request.url.replace(query=""))
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_assertion_type") != ASSERTION_TYPE
        ):
            self.token_errors.append("unsupported grant")
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        assertion = form.get("client_assertion")
        if not isinstance(assertion, str):
            return JSONResponse({"error": "invalid_request"}, 400)
        try:
            claims = await asyncio.to_thread(self._verify_assertion, assertion, token_url)
        except (jwt.InvalidTokenError, httpx.HTTPError, RuntimeError) as exc:
            self.token_errors.append(str(exc))
            return JSONResponse({"error": "invalid_client", "error_description": str(exc)}, 401)
        scopes = str(form.get("scope") or "").split()
        access = secrets.token_urlsafe(16)
        with self.lock:
            self.assertions.append(claims)
            self.tokens[access] = scopes
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.token_ttl_s,
                "scope": " ".join(scopes),
            }
        )

    def _scopes(self, request: Request, needed: str) -> list[str] | Response:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        with self.lock:
            scopes = self.tokens.get(token)
        if scopes is None:
            return JSONResponse({"error": "invalid_token"}, 401)
        if needed not in scopes:
            return JSONResponse({"error": "insufficient_scope", "needed": needed}, 403)
        return scopes

    # --- AGS ----------------------------------------------------------------------------------

    async def _lineitems(self, request: Request) -> Response:
        scopes = self._scopes(request, LINEITEM_SCOPE)
        if isinstance(scopes, Response):
            return scopes
        context = request.path_params["context"]
        prefix = f"{str(request.base_url).rstrip('/')}/courses/{context}/lineitems/"
        if request.method == "POST":
            body = await request.json()
            item = self.add_lineitem(
                str(request.base_url).rstrip("/"),
                context,
                str(body.get("label", "")),
                str(body.get("resourceId", "")),
                float(body.get("scoreMaximum", 1)),
            )
            return JSONResponse(self.lineitems[item], 201)
        with self.lock:
            items = [v for k, v in self.lineitems.items() if k.startswith(prefix)]
        return JSONResponse(items)

    async def _lineitem(self, request: Request) -> Response:
        item = str(request.url.replace(query=""))
        with self.lock:
            found = self.lineitems.get(item)
        return JSONResponse(found) if found else JSONResponse({"error": "no such line item"}, 404)

    async def _score(self, request: Request) -> Response:
        injected = self._injected("scores")
        if injected is not None:
            return injected
        scopes = self._scopes(request, SCORE_SCOPE)
        if isinstance(scopes, Response):
            return scopes
        item = str(request.url.replace(query="")).removesuffix("/scores")
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip() != SCORE_TYPE:
            return JSONResponse({"error": f"content type must be {SCORE_TYPE}"}, 415)
        with self.lock:
            known = item in self.lineitems
        if not known:
            return JSONResponse({"error": "no such line item"}, 404)
        try:
            body = await request.json()
            problem = _score_problem(body)
        except ValueError:
            body, problem = {}, "not JSON"
        if problem:
            return JSONResponse({"error": problem}, 400)
        key = (item, str(body["userId"]))
        stamp = datetime.datetime.fromisoformat(body["timestamp"])
        with self.lock:
            current = self.scores.get(key)
            kept = current is None or datetime.datetime.fromisoformat(current["timestamp"]) <= stamp
            if kept:
                self.scores[key] = body
            self.received.append(ReceivedScore(item, body, scopes, content_type, kept))
        return JSONResponse({"resultUrl": f"{item}/results/{body['userId']}"}, 200)

    # --- NRPS ---------------------------------------------------------------------------------

    async def _memberships(self, request: Request) -> Response:
        injected = self._injected("memberships")
        if injected is not None:
            return injected
        scopes = self._scopes(request, MEMBERSHIPS_SCOPE)
        if isinstance(scopes, Response):
            return scopes
        context = request.path_params["context"]
        page = int(request.query_params.get("page", "0"))
        with self.lock:
            everyone = list(self.members.get(context, []))
            self.member_pages.append(str(request.url))
        rows = everyone[page * self.page_size : (page + 1) * self.page_size]
        here = str(request.url.replace(query=""))
        headers = {}
        if (page + 1) * self.page_size < len(everyone):
            headers["Link"] = f'<{here}?{urlencode({"page": page + 1})}>; rel="next"'
        body = {"id": str(request.url), "context": {"id": context}, "members": rows}
        return JSONResponse(body, headers=headers, media_type=MEMBERSHIPS_TYPE)


def _score_problem(body: Any) -> str:
    """What is wrong with a score body (empty: nothing)."""
    if not isinstance(body, dict):
        return "a score is a JSON object"
    for name in ("userId", "activityProgress", "gradingProgress", "timestamp"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name} is required"
    if body["activityProgress"] not in PROGRESS:
        return "activityProgress is not one of the spec's values"
    if body["gradingProgress"] not in GRADING:
        return "gradingProgress is not one of the spec's values"
    try:
        stamp = datetime.datetime.fromisoformat(body["timestamp"])
    except ValueError:
        return "timestamp is not ISO 8601"
    if stamp.tzinfo is None:
        return "timestamp has no offset"
    if "scoreGiven" in body:
        given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
        if not isinstance(given, int | float) or not isinstance(maximum, int | float):
            return "scoreGiven needs a numeric scoreMaximum"
        if given < 0 or maximum <= 0:
            return "scores are not negative, a maximum is positive"
    return ""


def make_services(platform: Any) -> FakeServices:
    """The services side of a `FakePlatform`: it verifies client assertions against the tool's
    `/lti/jwks` (at `platform.tool_url`, trusted through `platform.ca`) and serves course
    `platform.context_id`'s memberships and line items. The test fixture starts it with
    `ThreadedServer` and sets `platform.services_base` to its URL."""

    def tool_jwks() -> dict[str, Any]:
        response = httpx.get(
            f"{platform.tool_url}/lti/jwks", verify=ssl.create_default_context(cafile=platform.ca), timeout=10
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    return FakeServices(client_id=platform.client_id, jwks=tool_jwks)
