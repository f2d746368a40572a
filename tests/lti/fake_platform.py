"""A fake LMS for the LTI tests: the launch side of a platform, served over HTTPS on loopback.

It has its own RSA key and JWKS, an OIDC authorization endpoint that checks the tool's login
redirect (client_id, redirect_uri, nonce, state, login_hint, the fixed OIDC parameters) and
answers with a form that posts `id_token` and `state` to the tool's launch URL, a course page
with launch links (for the browser), and a deep-linking return endpoint that verifies the tool's
signed response against the tool's `/lti/jwks` and keeps what it received.

Tests prepare a message with `resource_launch` / `deep_linking_request` (which return the
`lti_message_hint` to start it with), and mint tokens directly with `sign` for the refusals.
`ThreadedServer` runs an ASGI app (this one, or the services side) under uvicorn with TLS in a
thread of the test process.
"""

from __future__ import annotations

import asyncio
import base64
import html
import secrets
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
AGS_SCOPES = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
]


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def new(cls, kid: str | None = None) -> SigningKey:
        return cls(kid or uuid.uuid4().hex, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "e": _b64(numbers.e),
            "n": _b64(numbers.n),
        }


@dataclass
class Person:
    sub: str
    name: str
    email: str
    roles: list[str]


STUDENT = Person("student-1", "Grace Hopper", "grace@lms.example", [LEARNER])
TEACHER = Person("teacher-1", "Alan Turing", "alan@lms.example", [INSTRUCTOR])


@dataclass
class Message:
    """A launch the platform will send when the tool's login names its hint."""

    person: Person
    message_type: str
    resource_link_id: str | None = None
    custom: dict[str, str] | None = None
    lineitem: str | None = None
    title: str = "A concept"


@dataclass
class Authorized:
    """What the authorization endpoint answers: the form it posts to the tool."""

    action: str
    id_token: str
    state: str
    claims: dict[str, Any]


class AuthorizationRefused(Exception):
    pass


@dataclass
class FakePlatform:
    base: str  # https://127.0.0.1:<port>, also the issuer
    ca: Path  # the CA the tool's certificate is signed by
    client_id: str = "grader-tool"
    deployment_id: str = "deployment-1"
    context_id: str = "course-101"
    key: SigningKey = field(default_factory=SigningKey.new)
    tool_url: str = ""  # the tool's base URL, set once it runs
    services_base: str = ""  # where the services side (token, line items, memberships) runs; else `base`
    messages: dict[str, Message] = field(default_factory=dict)
    deep_link_responses: list[dict[str, Any]] = field(default_factory=list)
    deep_link_errors: list[str] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.base

    @property
    def auth_url(self) -> str:
        return f"{self.base}/auth"

    @property
    def jwks_url(self) -> str:
        return f"{self.base}/jwks"

    @property
    def services(self) -> str:
        return self.services_base or self.base

    @property
    def token_url(self) -> str:
        return f"{self.services}/token"

    @property
    def deep_link_return_url(self) -> str:
        return f"{self.base}/deep_link_return"

    def lineitems_url(self) -> str:
        return f"{self.services}/courses/{self.context_id}/lineitems"

    def registration(self) -> dict[str, str]:
        """The values to register this platform with the tool."""
        return {
            "name": "Fake LMS",
            "issuer": self.issuer,
            "client_id": self.client_id,
            "deployment_ids": self.deployment_id,
            "auth_login_url": self.auth_url,
            "auth_token_url": self.token_url,
            "key_set_url": self.jwks_url,
        }

    # messages

    def resource_launch(
        self,
        person: Person = STUDENT,
        concept: str | None = "causal-masking",
        link_id: str | None = None,
        lineitem: str | None = None,
        title: str = "Causal masking",
    ) -> str:
        hint = secrets.token_urlsafe(8)
        self.messages[hint] = Message(
            person=person,
            message_type="LtiResourceLinkRequest",
            resource_link_id=link_id or f"link-{hint}",
            custom={"concept": concept} if concept else None,
            lineitem=lineitem,
            title=title,
        )
        return hint

    def deep_linking_request(self, person: Person = TEACHER) -> str:
        hint = secrets.token_urlsafe(8)
        self.messages[hint] = Message(person=person, message_type="LtiDeepLinkingRequest")
        return hint

    def login_params(self, hint: str, **extra: str) -> dict[str, str]:
        """The third-party initiated login the platform starts at the tool (`extra` replaces
        parameters)."""
        message = self.messages[hint]
        return {
            "iss": self.issuer,
            "login_hint": message.person.sub,
            "target_link_uri": f"{self.tool_url}/lti/launch",
            "lti_message_hint": hint,
            "client_id": self.client_id,
            "lti_deployment_id": self.deployment_id,
            **extra,
        }

    def login_url(self, hint: str) -> str:
        return f"{self.tool_url}/lti/login?{urlencode(self.login_params(hint))}"

    def claims(self, message: Message, nonce: str) -> dict[str, Any]:
        now = int(time.time())
        person = message.person
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": person.sub,
            "exp": now + 300,
            "iat": now,
            "nonce": nonce,
            "name": person.name,
            "email": person.email,
            CLAIM + "message_type": message.message_type,
            CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": self.deployment_id,
            CLAIM + "target_link_uri": f"{self.tool_url}/lti/launch",
            CLAIM + "roles": person.roles,
            CLAIM + "context": {"id": self.context_id, "label": "LLM101", "title": "LLM engineering"},
            NRPS: {
                "context_memberships_url": f"{self.services}/courses/{self.context_id}/memberships",
                "service_versions": ["2.0"],
            },
        }
        if message.message_type == "LtiResourceLinkRequest":
            claims[CLAIM + "resource_link"] = {"id": message.resource_link_id, "title": message.title}
            if message.custom:
                claims[CLAIM + "custom"] = message.custom
            ags: dict[str, Any] = {"scope": AGS_SCOPES, "lineitems": self.lineitems_url()}
            if message.lineitem:
                ags["lineitem"] = message.lineitem
            claims[AGS] = ags
        else:
            claims[DL + "deep_linking_settings"] = {
                "deep_link_return_url": self.deep_link_return_url,
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": False,
                "data": "opaque-platform-data",
            }
        return claims

    def sign(self, claims: dict[str, Any], key: SigningKey | None = None) -> str:
        signer = key or self.key
        return jwt.encode(claims, signer.pem, algorithm="RS256", headers={"kid": signer.kid})

    def authorize(self, params: dict[str, str]) -> Authorized:
        """The OIDC authorization endpoint's checks and answer."""
        expected = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
        }
        for name, value in expected.items():
            if params.get(name) != value:
                raise AuthorizationRefused(f"{name} must be {value!r}, got {params.get(name)!r}")
        if params.get("client_id") != self.client_id:
            raise AuthorizationRefused(f"unknown client_id {params.get('client_id')!r}")
        if params.get("redirect_uri") != f"{self.tool_url}/lti/launch":
            raise AuthorizationRefused(f"redirect_uri {params.get('redirect_uri')!r} is not registered")
        for name in ("nonce", "state"):
            if not params.get(name):
                raise AuthorizationRefused(f"no {name}")
        message = self.messages.get(params.get("lti_message_hint", ""))
        if message is None:
            raise AuthorizationRefused("unknown lti_message_hint")
        if params.get("login_hint") != message.person.sub:
            raise AuthorizationRefused("login_hint does not match the message's user")
        claims = self.claims(message, params["nonce"])
        return Authorized(params["redirect_uri"], self.sign(claims), params["state"], claims)

    # the deep-linking return

    def verify_deep_link(self, token: str) -> dict[str, Any]:
        """The tool's response, verified with the key set the tool publishes."""
        tls = ssl.create_default_context(cafile=str(self.ca))
        keys = httpx.get(f"{self.tool_url}/lti/jwks", verify=tls, timeout=10).json()
        kid = jwt.get_unverified_header(token).get("kid")
        match = [k for k in keys["keys"] if k.get("kid") == kid]
        if not match:
            raise jwt.InvalidTokenError(f"kid {kid!r} is not in the tool's JWKS")
        public = jwt.PyJWK(match[0]).key
        claims: dict[str, Any] = jwt.decode(
            token,
            public,
            algorithms=["RS256"],
            audience=self.issuer,
            issuer=self.client_id,
            options={"require": ["exp", "iat", "nonce"]},
        )
        if claims.get(CLAIM + "message_type") != "LtiDeepLinkingResponse":
            raise jwt.InvalidTokenError("not a deep linking response")
        if claims.get(CLAIM + "deployment_id") != self.deployment_id:
            raise jwt.InvalidTokenError("wrong deployment")
        return claims

    # the ASGI app

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            return JSONResponse({"keys": [self.key.jwk()]})

        async def auth(request: Request) -> Response:
            params = dict(request.query_params)
            if request.method == "POST":
                params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
            try:
                answer = self.authorize(params)
            except AuthorizationRefused as exc:
                return HTMLResponse(f"<h1>Refused</h1><p id='refused'>{html.escape(str(exc))}</p>", 400)
            return HTMLResponse(
                "<!doctype html><html><body><h1>Signing you in to the tool...</h1>"
                f'<form id="launch" method="post" action="{html.escape(answer.action)}">'
                f'<input type="hidden" name="id_token" value="{answer.id_token}">'
                f'<input type="hidden" name="state" value="{html.escape(answer.state)}">'
                '<button type="submit">Continue</button></form>'
                "<script>document.getElementById('launch').submit();</script></body></html>"
            )

        async def deep_link_return(request: Request) -> Response:
            form = await request.form()
            token = form.get("JWT")
            if not isinstance(token, str):
                self.deep_link_errors.append("no JWT")
                return HTMLResponse("<p id='refused'>no JWT</p>", 400)
            try:
                claims = await asyncio.to_thread(self.verify_deep_link, token)
            except (jwt.InvalidTokenError, httpx.HTTPError) as exc:
                self.deep_link_errors.append(str(exc))
                return HTMLResponse(f"<p id='refused'>{html.escape(str(exc))}</p>", 400)
            self.deep_link_responses.append(claims)
            items = claims.get(DL + "content_items", [])
            titles = ", ".join(html.escape(str(i.get("title"))) for i in items)
            return HTMLResponse(f"<h1 id='placed'>Placed: {titles}</h1>")

        async def course(request: Request) -> Response:
            hint = request.query_params.get("hint", "")
            if hint not in self.messages:
                return HTMLResponse("<p>unknown hint</p>", 404)
            url = html.escape(self.login_url(hint))
            return HTMLResponse(
                f"<!doctype html><html><body><h1>LLM engineering</h1><a id='launch' href='{url}'>"
                f"{html.escape(self.messages[hint].title)}</a></body></html>"
            )

        async def course_frame(request: Request) -> Response:
            hint = request.query_params.get("hint", "")
            if hint not in self.messages:
                return HTMLResponse("<p>unknown hint</p>", 404)
            url = html.escape(self.login_url(hint))
            return HTMLResponse(
                "<!doctype html><html><body><h1>LLM engineering</h1>"
                f"<iframe id='tool' src='{url}' width='900' height='600'></iframe></body></html>"
            )

        return Starlette(
            routes=[
                Route("/course_frame", course_frame),
                Route("/jwks", jwks),
                Route("/auth", auth, methods=["GET", "POST"]),
                Route("/deep_link_return", deep_link_return, methods=["POST"]),
                Route("/course", course),
            ]
        )


class ThreadedServer:
    """An ASGI app under uvicorn with TLS, in a thread of this process, on a loopback port."""

    def __init__(self, app: Any, cert: Path, key: Path) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            log_level="warning",
            lifespan="off",
            ws="none",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=f"asgi-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _run(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self, timeout_s: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()
