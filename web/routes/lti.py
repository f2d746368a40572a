"""LTI 1.3: the endpoints an LMS calls (login, launch, key set, configuration), deep linking,
and the instructors' page that registers platforms.

The login and the launch arrive from the LMS, often inside its iframe: their responses may be
framed (`frame-ancestors https:`), carry no CSRF token (the id_token is the proof) and never
show a traceback: a refused launch is a page that says why, with the HTTP status of the reason,
and the detail goes to the log. Blocking work (Redis, the database, the platform's key set)
runs in the threadpool.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from grader.lti import registry
from grader.lti.adapters import StarletteLtiRequest
from grader.lti.launch import LaunchRefused
from grader.lti.tool import ToolUrls, canvas, config, config_text
from web.deps import Csrf, Id, TeacherPage, WebDep, flash, login, render
from web.services import lti as service
from web.services.base import Web
from web.services.errors import NotFound

log = logging.getLogger("grader.web.lti")
router = APIRouter(include_in_schema=False)
ASSETS = Path(__file__).resolve().parent.parent / "templates" / "lti"
FRAMEABLE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors https: http://localhost:* http://127.0.0.1:*"
)
# what the login passes on to a new window (pylti1p3's list) when cookies fail inside a frame
LOGIN_PARAMS = ("iss", "login_hint", "target_link_uri", "lti_message_hint", "lti_deployment_id", "client_id")
MAX_PARAM = 64 * 1024  # an id_token is a few KB; a longer parameter is dropped


def _urls(request: Request, web: Web) -> ToolUrls:
    return service.urls(web, str(request.base_url))


def _frameable(response: Response) -> Response:
    """Let an LMS show this response in its iframe (CSP frame-ancestors takes precedence over
    X-Frame-Options in browsers)."""
    response.headers["Content-Security-Policy"] = FRAMEABLE_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def _in_frame(request: Request) -> bool:
    return request.headers.get("sec-fetch-dest") == "iframe"


def refused(request: Request, exc: LaunchRefused) -> Response:
    """The page for a refused login or launch: why, what to do, what the LMS admin checks."""
    why = exc.why
    client = request.client.host if request.client else "?"
    log.warning("LTI %s refused (%s) from %s: %s", request.url.path, exc.code, client, exc.detail)
    response = render(request, "lti/refused.html", why.status, why=why, code=exc.code.value)
    return _frameable(response)


async def _lti_request(request: Request) -> StarletteLtiRequest:
    form: dict[str, str] = {}
    if request.method == "POST":
        data = await request.form()
        try:
            form = {k: v for k, v in data.items() if isinstance(v, str) and len(v) <= MAX_PARAM}
        finally:
            await data.close()
    query = {k: v for k, v in request.query_params.items() if len(v) <= MAX_PARAM}
    return StarletteLtiRequest(query, form, request.cookies, secure=request.url.scheme == "https")


@router.get("/lti/jwks")
def jwks(web: WebDep) -> Response:
    """The tool's public keys (every kept key, the signing one first)."""
    return JSONResponse(service.keys(web).jwks(), headers={"Cache-Control": "public, max-age=300"})


@router.get("/lti/config")
def tool_config(request: Request, web: WebDep, format: str = "json") -> Response:
    """What an LMS admin pastes: `format=json` (every value by its LTI name), `canvas` (Canvas's
    developer key JSON) or `text`."""
    tool = _urls(request, web)
    if format == "text":
        return PlainTextResponse(config_text(tool))
    if format == "canvas":
        return JSONResponse(canvas(tool))
    if format != "json":
        return PlainTextResponse("format must be json, canvas or text\n", status_code=422)
    return JSONResponse(config(tool))


@router.api_route("/lti/login", methods=["GET", "POST"])
async def oidc_login(request: Request, web: WebDep) -> Response:
    """The platform's third-party initiated login: redirect to its authorization endpoint with
    a state cookie and a nonce. Inside a frame, a page first checks that cookies can be set
    there; where they cannot, it offers to continue in a new window."""
    lti = await _lti_request(request)
    return await run_in_threadpool(_login, request, web, lti)


def _login(request: Request, web: Web, lti: StarletteLtiRequest) -> Response:
    if _in_frame(request) and not lti.get_param("lti1p3_new_window"):
        params = {k: lti.get_param(k) for k in LOGIN_PARAMS if lti.get_param(k)}
        params["lti1p3_new_window"] = "1"
        target = "/lti/login?" + urlencode(params)
        return _frameable(render(request, "lti/cookie_check.html", target=target))
    try:
        return service.login(web, lti, _urls(request, web))
    except LaunchRefused as exc:
        return refused(request, exc)


@router.post("/lti/launch")
async def launch(request: Request, web: WebDep) -> Response:
    """The platform's POST of the id_token: a resource link opens its concept (signed in as the
    launching person), a deep-linking request from an instructor opens the concept picker."""
    lti = await _lti_request(request)
    return await run_in_threadpool(_launch, request, web, lti)


def _launch(request: Request, web: Web, lti: StarletteLtiRequest) -> Response:
    try:
        outcome = service.launch(web, lti)
    except LaunchRefused as exc:
        return refused(request, exc)
    if isinstance(outcome, service.PickerLaunch):
        choices = service.concept_choices(web)
        return _frameable(render(request, "lti/picker.html", token=outcome.token, choices=choices))
    path = f"/concepts/{outcome.concept}"
    if _in_frame(request):
        # the site's pages are not framed, and its session cookie is not sent inside another
        # site's frame: continue in a window of its own, signed in by a one-use link
        token = service.entry_link(web, outcome.user_id, path)
        return _frameable(render(request, "lti/new_window.html", link=f"/lti/enter?token={token}"))
    login(request, service.user(web, outcome.user_id))
    return RedirectResponse(path, status_code=303)


@router.get("/lti/enter")
def enter(request: Request, web: WebDep, token: str = "") -> Response:
    """A one-use link from a launch inside a frame: sign in and open the concept."""
    try:
        person, path = service.take_entry(web, token)
    except LaunchRefused as exc:
        return refused(request, exc)
    login(request, person)
    return RedirectResponse(path, status_code=303)


@router.post("/lti/deep_link/select")
def deep_link_select(
    request: Request,
    web: WebDep,
    token: Annotated[str, Form(max_length=100)] = "",
    concept: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The instructor's choice: a signed deep-linking response, posted back to the platform by
    the page (the picker's token, from a verified instructor launch, is the authorization)."""
    try:
        service.pending(web, token)
        if not concept:
            return _picker_again(request, web, token, "Choose a concept.")
        answer = service.select(web, token, concept, _urls(request, web))
    except LaunchRefused as exc:
        return refused(request, exc)
    except NotFound:
        return _picker_again(
            request, web, token, f"There is no concept {concept!r}: choose one from the list."
        )
    return _frameable(render(request, "lti/deep_link_return.html", answer=answer))


def _picker_again(request: Request, web: Web, token: str, error: str) -> Response:
    choices = service.concept_choices(web)
    return _frameable(render(request, "lti/picker.html", 422, token=token, choices=choices, error=error))


@router.get("/lti/assets/lti.js")
def script() -> Response:
    """The script of the LTI pages (the cookie check, the form posted back to the platform)."""
    return FileResponse(ASSETS / "lti.js", media_type="text/javascript")


# the instructors' page: registered platforms and the tool's configuration


def _platform_page(
    request: Request, web: Web, status: int = 200, form: registry.PlatformForm | None = None, **extra: object
) -> Response:
    tool = _urls(request, web)
    return render(
        request,
        "instructor/lti.html",
        status,
        platforms=registry.platforms(web.factory),
        tool=tool,
        config_text=config_text(tool),
        form=form or registry.PlatformForm(),
        problems=extra.pop("problems", {}),
        deployment_list=registry.deployment_list,
        **extra,
    )


@router.get("/instructor/lti")
def platforms_page(request: Request, user: TeacherPage, web: WebDep) -> Response:
    return _platform_page(request, web)


Field = Annotated[str, Form(max_length=2000)]


def _platform_form(
    name: Field = "",
    issuer: Field = "",
    client_id: Field = "",
    deployment_ids: Annotated[str, Form(max_length=20000)] = "",
    auth_login_url: Field = "",
    auth_token_url: Field = "",
    key_set_url: Field = "",
    auth_audience: Field = "",
) -> registry.PlatformForm:
    """The registration form's fields, as the add and edit pages post them."""
    return registry.PlatformForm(
        name=name,
        issuer=issuer,
        client_id=client_id,
        deployment_ids=deployment_ids,
        auth_login_url=auth_login_url,
        auth_token_url=auth_token_url,
        key_set_url=key_set_url,
        auth_audience=auth_audience,
    )


PlatformFields = Annotated[registry.PlatformForm, Depends(_platform_form)]


@router.post("/instructor/lti", dependencies=[Csrf])
def add_platform(
    request: Request,
    user: TeacherPage,
    web: WebDep,
    form: PlatformFields,
) -> Response:
    try:
        row = registry.add(web.factory, form, created_by=user.id)
    except registry.RegistrationError as exc:
        return _platform_page(request, web, 422, form=form, problems=exc.problems)
    flash(request, f"Registered {row.name}: launches from it are accepted now.")
    return RedirectResponse("/instructor/lti", status_code=303)


@router.get("/instructor/lti/{platform_id}")
def edit_page(request: Request, platform_id: Id, user: TeacherPage, web: WebDep) -> Response:
    row = next((p for p in registry.platforms(web.factory) if p.id == platform_id), None)
    if row is None:
        raise NotFound("platform")
    form = registry.PlatformForm(
        name=row.name,
        issuer=row.issuer,
        client_id=row.client_id,
        deployment_ids=registry.deployment_list(row.deployment_ids),
        auth_login_url=row.auth_login_url,
        auth_token_url=row.auth_token_url,
        key_set_url=row.key_set_url,
        auth_audience=row.auth_audience or "",
    )
    return render(request, "instructor/lti_edit.html", platform=row, form=form, problems={})


@router.post("/instructor/lti/{platform_id}", dependencies=[Csrf])
def edit_platform(
    request: Request,
    platform_id: Id,
    user: TeacherPage,
    web: WebDep,
    form: PlatformFields,
) -> Response:
    row = next((p for p in registry.platforms(web.factory) if p.id == platform_id), None)
    if row is None:
        raise NotFound("platform")
    try:
        registry.update(web.factory, platform_id, form)
    except registry.RegistrationError as exc:
        return render(
            request, "instructor/lti_edit.html", 422, platform=row, form=form, problems=exc.problems
        )
    flash(request, f"Saved {form.name.strip() or row.name}.")
    return RedirectResponse("/instructor/lti", status_code=303)


@router.post("/instructor/lti/{platform_id}/enabled", dependencies=[Csrf])
def set_enabled(
    request: Request,
    platform_id: Id,
    user: TeacherPage,
    web: WebDep,
    enabled: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    row = registry.set_enabled(web.factory, platform_id, enabled == "1")
    if row is None:
        raise NotFound("platform")
    flash(request, f"{row.name}: launches {'accepted' if row.enabled else 'refused'} from now on.")
    return RedirectResponse("/instructor/lti", status_code=303)
