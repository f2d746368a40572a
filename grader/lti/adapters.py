"""pylti1p3 on Starlette: its request, cookie, redirect and launch-data storage interfaces,
implemented over a Starlette request, a Starlette response and Redis.

pylti1p3 is written for Django and Flask; these adapters are all it needs to run inside the web
app. Everything here is synchronous: the launch validation that uses them (which also fetches
the platform's key set over the network) runs in the threadpool, never on the event loop.

The launch-data store keeps what pylti1p3 saves between the login and the launch (the nonce,
validated launches) in Redis, under a per-browser session id carried by a cookie, with a TTL.
`consume` reads and deletes a key in one step (GETDEL): a nonce can be used once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pylti1p3.cookie import CookieService
from pylti1p3.launch_data_storage.base import LaunchDataStorage
from pylti1p3.redirect import Redirect
from pylti1p3.request import Request as LtiRequest
from pylti1p3.session import SessionService
from redis import Redis
from starlette.responses import RedirectResponse, Response

COOKIE_PREFIX = "lti1p3"
# where the state and session-id cookies are sent: the LTI endpoints only
COOKIE_PATH = "/lti/"
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")  # what pylti1p3 puts in them: uuids and states


class StarletteLtiRequest(LtiRequest):
    """A request's query and form parameters, as pylti1p3 reads them. The form is read by the
    (async) route before the launch runs in the threadpool, and handed in here."""

    def __init__(
        self,
        query: Mapping[str, str],
        form: Mapping[str, str],
        cookies: Mapping[str, str],
        secure: bool,
    ) -> None:
        self._params = {**query, **form}
        self.cookies = dict(cookies)
        self._secure = secure

    @property
    def session(self) -> None:  # pylti1p3 asks only when no storage is set; ours always is
        raise NotImplementedError("the LTI launch keeps its data in Redis, not in a session")

    def is_secure(self) -> bool:
        return self._secure

    def get_param(self, key: str) -> str:
        return self._params.get(key, "")


@dataclass
class CookieJar(CookieService):
    """The cookies pylti1p3 reads from the request and those it asks to set, written onto the
    response with `apply`. They are `SameSite=None; Secure` (sent on the platform's cross-site
    POST of the launch), `HttpOnly`, limited to `/lti/`, and `Partitioned` (CHIPS), so that a
    login and launch inside an LMS's iframe share them where unpartitioned third-party cookies
    are blocked."""

    request: StarletteLtiRequest
    to_set: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    def _name(self, name: str) -> str:
        return f"{COOKIE_PREFIX}-{name}"

    def get_cookie(self, name: str) -> str | None:
        return self.request.cookies.get(self._name(name))

    def set_cookie(self, name: str, value: str | int, exp: int | None = 3600) -> None:
        self.to_set[self._name(name)] = (str(value), exp)

    def apply(self, response: Response) -> None:
        # written by hand: Starlette's set_cookie refuses `Partitioned` before Python 3.14
        for name, (value, max_age) in self.to_set.items():
            if not _COOKIE_VALUE.match(value):
                raise ValueError(f"unexpected characters in the value of cookie {name}")
            parts = [
                f"{name}={value}",
                f"Path={COOKIE_PATH}",
                "Secure",
                "HttpOnly",
                "SameSite=None",
                "Partitioned",
            ]
            if max_age is not None:
                parts.insert(1, f"Max-Age={max_age}")
            response.headers.append("set-cookie", "; ".join(parts))


class RedisLaunchData(LaunchDataStorage[Any]):
    """pylti1p3's launch data in Redis: JSON values under `lti1p3-<session id>-<key>`."""

    def __init__(self, redis: Redis) -> None:
        super().__init__()
        self.redis = redis

    def can_set_keys_expiration(self) -> bool:
        return True

    def get_value(self, key: str) -> Any:
        raw = self.redis.get(self._prepare_key(key))
        return None if raw is None else json.loads(raw)

    def set_value(self, key: str, value: Any, exp: int | None = None) -> None:
        self.redis.set(self._prepare_key(key), json.dumps(value), ex=exp)

    def check_value(self, key: str) -> bool:
        return bool(self.redis.exists(self._prepare_key(key)))

    def consume(self, key: str) -> bool:
        """Whether the key was there; it is gone afterwards (one atomic GETDEL)."""
        return self.redis.getdel(self._prepare_key(key)) is not None


class ConsumingSessionService(SessionService):
    """pylti1p3's session service, except that checking a nonce uses it up: the same launch
    (the same id_token) posted again finds no nonce and is refused."""

    data_storage: RedisLaunchData

    def __init__(self, request: StarletteLtiRequest, storage: RedisLaunchData) -> None:
        self.data_storage = storage
        storage.set_request(request)

    def check_nonce(self, nonce: str) -> bool:
        return self.data_storage.consume(self._get_key("nonce", nonce))


class StarletteRedirect(Redirect[Response]):
    """Where pylti1p3's OIDC login sends the browser: a plain 302 to the platform."""

    def __init__(self, location: str) -> None:
        self.location = location

    def do_redirect(self) -> Response:
        return RedirectResponse(self.location, status_code=302)

    def do_js_redirect(self) -> Response:
        return self.do_redirect()

    def set_redirect_url(self, location: str) -> None:
        self.location = location

    def get_redirect_url(self) -> str:
        return self.location
