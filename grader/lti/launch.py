"""An LTI 1.3 launch: the OIDC login that starts it, the checks of the id_token it ends with,
and why a launch is refused.

pylti1p3 does the protocol; `ToolLaunch` adds what it lacks and names every refusal:
- the nonce is used up when checked (Redis GETDEL), so a replayed launch is refused;
- `aud` must contain a client id registered for the issuer, and `azp` must equal it when `aud`
  has several values or `azp` is present;
- the signature is checked with the platform's key named by `kid` (RS256/384/512 only), with
  `exp`, `iat` and `iss` required and a minute of leeway for clocks, after refetching the
  platform's key set once if the key is not in the cached one (the platform rotated);
- an unknown deployment, a disabled platform and an unregistered issuer are refused by name.

Every refusal is a `LaunchRefused` with a `Refusal` code; `REASONS` says, for each, the HTTP
status and what the person and the LMS admin should do. The technical detail goes to the log.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from pylti1p3.exception import LtiException, LtiInvalidNonceException, OIDCException
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.oidc_login import OIDCLogin
from pylti1p3.redirect import Redirect
from pylti1p3.registration import Registration
from redis import Redis
from starlette.responses import Response

from grader.lti.adapters import (
    ConsumingSessionService,
    CookieJar,
    RedisLaunchData,
    StarletteLtiRequest,
    StarletteRedirect,
)
from grader.lti.registry import ToolConfig, client_ids

log = logging.getLogger("grader.lti")

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = CLAIM + "message_type"
DEPLOYMENT_ID = CLAIM + "deployment_id"
RESOURCE_LINK = CLAIM + "resource_link"
CONTEXT = CLAIM + "context"
ROLES = CLAIM + "roles"
CUSTOM = CLAIM + "custom"
DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"

ALGORITHMS = ("RS256", "RS384", "RS512")
LEEWAY_S = 60  # clock difference tolerated between the platform and this host
KEY_SET_CACHE_S = 300
KEY_SET_TIMEOUT_S = 10.0
LAUNCH_DATA_S = 3600  # how long a nonce waits for its launch, and a launch's data is kept


class Refusal(enum.StrEnum):
    MISSING_PARAMS = "missing_params"
    UNREGISTERED = "unregistered"
    DISABLED = "disabled"
    NO_COOKIE = "no_cookie"
    STATE = "state"
    MALFORMED = "malformed"
    REPLAY = "replay"
    AUDIENCE = "audience"
    AZP = "azp"
    PLATFORM_KEYS = "platform_keys"
    SIGNATURE = "signature"
    EXPIRED = "expired"
    DEPLOYMENT = "deployment"
    MESSAGE = "message"
    NO_CONCEPT = "no_concept"
    NOT_INSTRUCTOR = "not_instructor"
    LINK_EXPIRED = "link_expired"


@dataclass(frozen=True)
class Why:
    status: int
    title: str
    explanation: str  # for the person who launched
    admin: str  # what the LMS admin (or instructor) should check


_RELAUNCH = "Go back to the course and open the activity again."
REASONS: dict[Refusal, Why] = {
    Refusal.MISSING_PARAMS: Why(
        400,
        "The LMS did not start the login correctly",
        "The login request did not carry the issuer (iss) and login hint that LTI 1.3 requires.",
        "The tool's OIDC login URL (ending in /lti/login) must be called by the LMS itself, "
        "not opened directly. Check the login URL pasted into the LMS.",
    ),
    Refusal.UNREGISTERED: Why(
        403,
        "This LMS is not registered with the tool",
        "The tool does not know the LMS (issuer and client id) that sent this launch.",
        "Register the platform on the tool's LTI page (Instructor > LTI platforms) with the "
        "issuer and client id exactly as the LMS shows them.",
    ),
    Refusal.DISABLED: Why(
        403,
        "Launches from this LMS are turned off",
        "The tool's administrators have disabled this LMS registration.",
        "Enable the platform again on the tool's LTI page if launches should work.",
    ),
    Refusal.NO_COOKIE: Why(
        400,
        "Your browser did not keep the tool's login cookie",
        "The launch could not be matched to the login that started it, usually because the "
        "browser blocks cookies inside the LMS page (third-party cookies). " + _RELAUNCH + " "
        "If it happens again, allow cookies for this site or open the activity in a new window.",
        "The tool must be served over HTTPS (its login cookies are SameSite=None; Secure). Set the "
        "placement to open in a new window where browsers block third-party cookies.",
    ),
    Refusal.STATE: Why(
        400,
        "This launch does not match its login",
        "The state sent with the launch is not the one the tool issued to this browser (the launch "
        "was opened twice, came from another browser, or its cookie was lost). " + _RELAUNCH,
        "Check that the tool is served over HTTPS and that the LMS posts the launch to the same "
        "host the login went to.",
    ),
    Refusal.MALFORMED: Why(
        400,
        "The launch message could not be read",
        "The LMS sent a launch the tool cannot read (no id_token, or not a JWT). " + _RELAUNCH,
        "Check that the redirect URI in the LMS is the tool's launch URL (ending in /lti/launch).",
    ),
    Refusal.REPLAY: Why(
        403,
        "This launch was used already",
        "Each launch can be used once; this one arrived a second time (a reload or the back "
        "button after launching). " + _RELAUNCH,
        "Nothing to change when a person reloaded. Repeated reports can mean a launch was captured "
        "and replayed.",
    ),
    Refusal.AUDIENCE: Why(
        403,
        "This launch was meant for another tool",
        "The launch's audience (aud) does not name this tool's client id.",
        "Check that the client id registered on the tool's LTI page is the one the LMS assigned to "
        "this tool (its developer key or client id).",
    ),
    Refusal.AZP: Why(
        403,
        "This launch names another authorized party",
        "The launch's authorized party (azp) is not this tool's client id.",
        "Check the client id registered on the tool's LTI page against the one the LMS assigned.",
    ),
    Refusal.PLATFORM_KEYS: Why(
        502,
        "The LMS's public keys could not be fetched",
        "The tool could not download the LMS's public key set to check the launch's signature. "
        "Try again in a moment.",
        "Check the public key set (JWKS) URL registered on the tool's LTI page, and that the tool's "
        "host can reach it over HTTPS.",
    ),
    Refusal.SIGNATURE: Why(
        403,
        "The launch's signature is not valid",
        "The launch was not signed by a key of the registered LMS, so the tool cannot trust it.",
        "Check the public key set (JWKS) URL registered on the tool's LTI page; it must be the "
        "key set of the LMS that launches the tool.",
    ),
    Refusal.EXPIRED: Why(
        403,
        "The launch has expired",
        "The launch message is too old (or dated in the future). " + _RELAUNCH,
        "Check that the clocks of the LMS and the tool's host are right (NTP).",
    ),
    Refusal.DEPLOYMENT: Why(
        403,
        "This deployment of the tool is not registered",
        "The LMS launched from a deployment of the tool that is not registered here.",
        "Add the deployment id shown in the LMS to the platform on the tool's LTI page.",
    ),
    Refusal.MESSAGE: Why(
        400,
        "The launch message is incomplete",
        "The LMS sent a launch without a claim LTI 1.3 requires, or of a kind this tool does not handle.",
        "The tool handles resource link launches and deep linking requests; check the placement's "
        "message type in the LMS.",
    ),
    Refusal.NO_CONCEPT: Why(
        404,
        "This link does not open a concept",
        "The course link was not set up with one of the tool's concepts, or the concept no longer exists.",
        "Place the concept again with deep linking (the tool's concept picker), or give the link "
        "the custom parameter concept=<slug> of an existing concept.",
    ),
    Refusal.NOT_INSTRUCTOR: Why(
        403,
        "Only instructors can choose concepts",
        "Choosing which concept a course link opens is for the course's instructors.",
        "Deep linking is offered to people with an Instructor, Administrator or ContentDeveloper "
        "role in the course.",
    ),
    Refusal.LINK_EXPIRED: Why(
        410,
        "This link has expired",
        "The link was for one use within a few minutes, and it was used or it is too old. " + _RELAUNCH,
        "Nothing to change; links that open the tool in a new window last two minutes.",
    ),
}


class LaunchRefused(Exception):
    """The launch (or login) is refused for `code`; `detail` is for the log only."""

    def __init__(self, code: Refusal, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def why(self) -> Why:
        return REASONS[self.code]


@dataclass(frozen=True)
class ValidLaunch:
    """A launch that passed every check."""

    platform_id: int
    issuer: str
    client_id: str
    deployment_id: str
    message_type: str
    body: dict[str, Any]


def _audiences(body: dict[str, Any]) -> list[str]:
    aud = body.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


class ToolLaunch(MessageLaunch[StarletteLtiRequest, ToolConfig, ConsumingSessionService, CookieJar]):
    """pylti1p3's launch with the checks it lacks, each failure a named `LaunchRefused`."""

    def __init__(
        self,
        request: StarletteLtiRequest,
        config: ToolConfig,
        session: ConsumingSessionService,
        cookies: CookieJar,
        storage: RedisLaunchData,
        redis: Redis,
    ) -> None:
        try:
            super().__init__(
                request,
                config,
                session_service=session,
                cookie_service=cookies,
                launch_data_storage=storage,
            )
        except LtiException as exc:  # the session-id cookie did not come back
            raise LaunchRefused(Refusal.NO_COOKIE, str(exc)) from None
        self._redis = redis
        self._client_id: str | None = None
        self.platform_id = 0  # the registration's id, once found
        self.set_launch_data_lifetime(LAUNCH_DATA_S)

    def _get_request_param(self, key: str) -> str:
        return self._request.get_param(key)

    def body(self) -> dict[str, Any]:
        return dict(self._jwt.get("body", {}))

    # the steps of `validate`, in its order

    def validate_state(self) -> ToolLaunch:
        try:
            super().validate_state()
        except LtiException as exc:
            code = Refusal.MALFORMED if "id_token" in str(exc) else Refusal.STATE
            raise LaunchRefused(code, str(exc)) from None
        return self

    def validate_jwt_format(self) -> ToolLaunch:
        try:
            super().validate_jwt_format()
        except LtiException as exc:
            raise LaunchRefused(Refusal.MALFORMED, str(exc)) from None
        if not isinstance(self._jwt.get("body"), dict) or not isinstance(self._jwt.get("header"), dict):
            raise LaunchRefused(Refusal.MALFORMED, "the id_token's header or body is not an object")
        return self

    def validate_nonce(self) -> ToolLaunch:
        try:
            super().validate_nonce()
        except LtiInvalidNonceException as exc:
            raise LaunchRefused(Refusal.REPLAY, f"nonce unknown or used: {exc}") from None
        except LtiException as exc:
            raise LaunchRefused(Refusal.MALFORMED, str(exc)) from None
        return self

    def get_client_id(self) -> str:
        """The client id this launch is for: the registered one named in `aud` (preferring
        `azp` when `aud` names several)."""
        if self._client_id is not None:
            return self._client_id
        body = self.body()
        iss = body.get("iss")
        if not isinstance(iss, str) or not iss:
            raise LaunchRefused(Refusal.MALFORMED, "no iss")
        registered = client_ids(self._tool_config.factory, iss)
        if not registered:
            raise LaunchRefused(Refusal.UNREGISTERED, f"no platform registered with issuer {iss!r}")
        audiences = _audiences(body)
        ours = [a for a in audiences if a in registered]
        if not ours:
            raise LaunchRefused(
                Refusal.AUDIENCE, f"aud {audiences!r} names none of the client ids {registered!r} of {iss}"
            )
        azp = body.get("azp")
        self._client_id = azp if azp in ours else ours[0]
        return self._client_id

    def validate_registration(self) -> ToolLaunch:
        try:
            super().validate_registration()
        except LtiException as exc:
            raise LaunchRefused(Refusal.UNREGISTERED, str(exc)) from None
        row = self._tool_config.platform(self.get_iss(), self.get_client_id())
        if row is None:
            raise LaunchRefused(Refusal.UNREGISTERED, "the registration disappeared")
        if not row.enabled:
            raise LaunchRefused(Refusal.DISABLED, f"platform {row.id} is disabled")
        self.platform_id = row.id
        return self

    def _key_set(self, url: str, fresh: bool) -> dict[str, Any]:
        cache = "lti:jwks:" + hashlib.sha256(url.encode()).hexdigest()
        if not fresh:
            cached = self._redis.get(cache)
            if cached is not None:
                loaded: dict[str, Any] = json.loads(cached)
                return loaded
        try:
            response = requests.get(url, timeout=KEY_SET_TIMEOUT_S, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise LaunchRefused(Refusal.PLATFORM_KEYS, f"fetching {url}: {exc}") from None
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise LaunchRefused(Refusal.PLATFORM_KEYS, f"{url} did not answer a JSON key set")
        self._redis.set(cache, json.dumps(keys), ex=KEY_SET_CACHE_S)
        return keys

    def get_public_key(self) -> tuple[Any, str]:
        registration: Registration | None = self._registration
        assert registration is not None
        url = registration.get_key_set_url() or ""
        header = self._jwt.get("header", {})
        kid, alg = header.get("kid"), header.get("alg")
        if not kid or alg not in ALGORITHMS:
            raise LaunchRefused(Refusal.SIGNATURE, f"header kid={kid!r} alg={alg!r}")
        for fresh in (False, True):
            for key in self._key_set(url, fresh)["keys"]:
                if isinstance(key, dict) and key.get("kid") == kid and key.get("alg", "RS256") == alg:
                    try:
                        return jwt.PyJWK(key, algorithm=alg).key, alg
                    except (jwt.PyJWKError, ValueError, TypeError) as exc:
                        raise LaunchRefused(Refusal.PLATFORM_KEYS, f"key {kid}: {exc}") from None
        raise LaunchRefused(Refusal.SIGNATURE, f"no key {kid!r} ({alg}) in {url}")

    def validate_jwt_signature(self) -> ToolLaunch:
        public_key, alg = self.get_public_key()
        client_id = self.get_client_id()
        try:
            jwt.decode(
                self._get_id_token(),
                public_key,
                algorithms=[alg],
                audience=client_id,
                issuer=self.get_iss(),
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError) as exc:
            raise LaunchRefused(Refusal.EXPIRED, str(exc)) from None
        except jwt.InvalidAudienceError as exc:
            raise LaunchRefused(Refusal.AUDIENCE, str(exc)) from None
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
            raise LaunchRefused(Refusal.SIGNATURE, str(exc)) from None
        except jwt.InvalidTokenError as exc:
            raise LaunchRefused(Refusal.MALFORMED, f"{type(exc).__name__}: {exc}") from None
        body = self.body()
        azp = body.get("azp")
        if (azp is not None or len(_audiences(body)) > 1) and azp != client_id:
            raise LaunchRefused(Refusal.AZP, f"azp {azp!r} is not the client id {client_id!r}")
        return self

    def validate_deployment(self) -> ToolLaunch:
        try:
            super().validate_deployment()
        except LtiException as exc:
            raise LaunchRefused(Refusal.DEPLOYMENT, str(exc)) from None
        return self

    def validate_message(self) -> ToolLaunch:
        body = self.body()
        if body.get(MESSAGE_TYPE) not in (RESOURCE_LINK_REQUEST, DEEP_LINKING_REQUEST):
            raise LaunchRefused(Refusal.MESSAGE, f"message type {body.get(MESSAGE_TYPE)!r}")
        try:
            super().validate_message()
        except LtiException as exc:
            raise LaunchRefused(Refusal.MESSAGE, str(exc)) from None
        return self

    def checked(self) -> ValidLaunch:
        """Run every check; the launch, or LaunchRefused."""
        self.validate()
        body = self.body()
        return ValidLaunch(
            platform_id=self.platform_id,
            issuer=self.get_iss(),
            client_id=self.get_client_id(),
            deployment_id=str(body.get(DEPLOYMENT_ID)),
            message_type=str(body.get(MESSAGE_TYPE)),
            body=body,
        )


class ToolLogin(OIDCLogin[StarletteLtiRequest, ToolConfig, ConsumingSessionService, CookieJar, Response]):
    """pylti1p3's OIDC login: finds the registration (by issuer and client id, or by issuer
    alone when the platform sends no client id and only one is registered)."""

    def get_redirect(self, url: str) -> Redirect[Response]:
        return StarletteRedirect(url)

    def validate_oidc_login(self) -> Registration:
        iss = self._get_request_param("iss")
        if not iss or not self._get_request_param("login_hint"):
            raise LaunchRefused(Refusal.MISSING_PARAMS, f"iss={iss!r}, login_hint missing or empty")
        client_id = self._get_request_param("client_id")
        if not client_id:
            registered = client_ids(self._tool_config.factory, iss)
            if len(registered) == 1:
                client_id = registered[0]
        row = self._tool_config.platform(iss, client_id) if client_id else None
        if row is None:
            raise LaunchRefused(Refusal.UNREGISTERED, f"login for iss={iss!r} client_id={client_id!r}")
        if not row.enabled:
            raise LaunchRefused(Refusal.DISABLED, f"platform {row.id} is disabled")
        return self._tool_config.registration_of(row)


def login_redirect(
    request: StarletteLtiRequest, config: ToolConfig, redis: Redis, launch_url: str
) -> Response:
    """The answer to a platform's login initiation: a redirect to its authorization endpoint,
    with the state cookie and the nonce kept for the launch."""
    storage = RedisLaunchData(redis)
    cookies = CookieJar(request)
    session = ConsumingSessionService(request, storage)
    login = ToolLogin(request, config, session_service=session, cookie_service=cookies)
    try:
        login.set_launch_data_storage(storage)
        login.set_launch_data_lifetime(LAUNCH_DATA_S)
        response = login.redirect(launch_url)
    except OIDCException as exc:
        raise LaunchRefused(Refusal.MISSING_PARAMS, str(exc)) from None
    cookies.apply(response)
    return response


def check_launch(request: StarletteLtiRequest, config: ToolConfig, redis: Redis) -> ValidLaunch:
    """The launch posted to the tool, checked; LaunchRefused says why not."""
    storage = RedisLaunchData(redis)
    cookies = CookieJar(request)
    session = ConsumingSessionService(request, storage)
    return ToolLaunch(request, config, session, cookies, storage, redis).checked()
