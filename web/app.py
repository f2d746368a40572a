"""The web app: `create_app(settings)` builds it; `grader serve` runs it with workers.

Pages are rendered on the server (Jinja2) with small front-end packages from npm (the editor,
KaTeX, the chart), served from `web/node_modules` as installed by the setup script. The JSON API
lives under `/api/v1` with token auth; its OpenAPI spec is at `/openapi.json`, docs at `/docs`.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from grader.catalog import load_catalog
from grader.library import Library
from grader.settings import Settings, get_settings
from grader.store import make_engine, require_current, sessions
from web import markdown
from web.deps import LoginRequired, render
from web.http import headers_of, status_of
from web.services import ServiceError, Web

log = logging.getLogger("grader.web")
WEB_DIR = Path(__file__).resolve().parent
VENDOR_DIR = WEB_DIR / "node_modules"
SESSION_DAYS = 14


def secret_key(settings: Settings) -> str:
    """The key that signs session cookies: GRADER_SECRET_KEY, else one generated on first run
    and kept (mode 0600) in the data directory, so sessions survive a restart."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database())
    require_current(engine)
    catalog = load_catalog(settings.exercises_dir, settings.solutions_dir, strict=False)
    web = Web(settings=settings, factory=sessions(engine), library=Library(catalog, settings.data_dir))

    app = FastAPI(
        title="LLM grader",
        version="1",
        description="Submit solutions to LLM-engineering exercises and follow their grading. "
        "Authenticate with `Authorization: Bearer <token>`; create tokens on your account page "
        "or with `POST /api/v1/tokens`.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.web = web
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key(settings),
        session_cookie="grader_session",
        max_age=SESSION_DAYS * 24 * 3600,
        same_site="lax",
        https_only=settings.secure_cookies,
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if "frame-ancestors" not in response.headers.get("Content-Security-Policy", ""):
            # a response that says who may frame it (the LTI pages an LMS shows) keeps its word
            response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(("/docs", "/openapi.json")):
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "font-src 'self' data:; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            )
        return response

    from web.routes import account, api, auth, concepts, instructor, lti, metrics, submissions

    for module in (auth, account, concepts, submissions, instructor, lti, api, metrics):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    if VENDOR_DIR.is_dir():
        app.mount("/vendor", StaticFiles(directory=VENDOR_DIR), name="vendor")
    else:
        log.warning(
            "%s is missing (run scripts/setup.sh): the editor falls back to a plain text box", VENDOR_DIR
        )

    highlight_css = markdown.pygments_css()

    @app.get("/highlight.css", include_in_schema=False)
    def highlight() -> Response:
        return PlainTextResponse(highlight_css, media_type="text/css")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={exc.next}", status_code=303)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return _error(request, status_of(exc), exc.message, headers_of(exc))

    @app.exception_handler(RedisError)
    async def queue_down(request: Request, exc: RedisError) -> Response:
        log.warning("Redis failed during %s: %s", request.url.path, exc)
        return _error(request, 503, "The queue is unavailable; try again in a moment.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": jsonable_errors(exc)}, status_code=422)
        return _error(request, 422, "The form was incomplete or malformed.")

    return app


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    response = render(request, "error.html", status_code=status, status=status, message=message)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
