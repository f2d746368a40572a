"""What routes depend on: the current user (from the session cookie on pages, from a bearer
token on the API), the instructor check, CSRF protection for forms, and the templates."""

from __future__ import annotations

import datetime
import hmac
import secrets
from collections.abc import AsyncIterator
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Header, HTTPException, Path, Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from grader.store import Role, User
from web import accounts
from web.services import Web

templates = Jinja2Templates(directory=FilePath(__file__).resolve().parent / "templates")


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next = quote(next_path, safe="/")


def get_web(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


WebDep = Annotated[Web, Depends(get_web)]


def session_user(request: Request) -> User | None:
    user_id = request.session.get("user_id")
    if not isinstance(user_id, int):
        return None
    with get_web(request).factory() as session:
        user = session.get(User, user_id)
    if user is None or user.password_hash is None:
        request.session.clear()
        return None
    # a password change invalidates older sessions
    if request.session.get("pw") != user.password_hash[-12:]:
        request.session.clear()
        return None
    return user


def login(request: Request, user: User) -> None:
    assert user.password_hash is not None
    request.session.clear()  # a fresh session: no fixation
    request.session.update(
        user_id=user.id,
        pw=user.password_hash[-12:],
        csrf=secrets.token_urlsafe(24),
        at=datetime.datetime.now(datetime.UTC).isoformat(),
    )


def page_user(request: Request) -> User:
    user = session_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return user


def teacher_page_user(user: Annotated[User, Depends(page_user)]) -> User:
    if not Role(user.role).teaches:
        raise HTTPException(403, "This page is for instructors.")
    return user


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def verify_csrf(request: Request, form: FormData) -> None:
    """Refuse (403) a form that does not carry the session's CSRF token."""
    sent = form.get("csrf")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "The form expired or came from elsewhere: reload the page and try again.")


async def check_csrf(request: Request) -> AsyncIterator[None]:
    """Forms carry the session's CSRF token; a POST without the right one is refused. Files in
    the form are closed when the request ends, also on routes that take no file."""
    form = await request.form()
    try:
        verify_csrf(request, form)
        yield
    finally:
        await form.close()


def api_user(
    request: Request,
    authorization: Annotated[
        str | None, Header(description="`Bearer <token>`: a token from your account page")
    ] = None,
) -> User:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401, "Send an API token: Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
        )
    user = accounts.token_user(get_web(request).factory, token.strip())
    if user is None:
        raise HTTPException(401, "The API token is unknown or revoked.", {"WWW-Authenticate": "Bearer"})
    return user


def api_teacher(user: Annotated[User, Depends(api_user)]) -> User:
    if not Role(user.role).teaches:
        raise HTTPException(403, "Only instructors may do this.")
    return user


PageUser = Annotated[User, Depends(page_user)]
TeacherPage = Annotated[User, Depends(teacher_page_user)]
ApiUser = Annotated[User, Depends(api_user)]
ApiTeacher = Annotated[User, Depends(api_teacher)]
Csrf = Depends(check_csrf)
MAX_ID = 2**63 - 1  # the largest integer key a database column holds
# an id in a path: anything else is "not found" (422) before it reaches the database
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Any:
    user = session_user(request)
    context.setdefault("user", user)
    context["csrf"] = csrf_token(request)
    context["is_teacher"] = bool(user and Role(user.role).teaches)
    context["flash"] = request.session.pop("flash", None)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def flash(request: Request, message: str, kind: str = "info") -> None:
    request.session["flash"] = {"message": message, "kind": kind}
