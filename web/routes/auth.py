"""Sign up, log in, log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from web import accounts
from web.deps import Csrf, WebDep, flash, login, render, session_user

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/concepts"


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/concepts" if session_user(request) else "/login", status_code=303)


@router.get("/signup")
def signup_page(request: Request, web: WebDep) -> Response:
    if not web.settings.signup_open:
        return render(
            request, "error.html", 403, status=403, message="Sign-up is closed; ask your instructor."
        )
    return render(request, "signup.html", form={})


@router.post("/signup", dependencies=[Csrf])
def signup(
    request: Request,
    web: WebDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    name: Annotated[str, Form(max_length=80)] = "",
) -> Response:
    if not web.settings.signup_open:
        return render(
            request, "error.html", 403, status=403, message="Sign-up is closed; ask your instructor."
        )
    try:
        user = accounts.create_user(web.factory, email, password, name)
    except accounts.AccountError as exc:
        return render(request, "signup.html", 422, error=str(exc), form={"email": email, "name": name})
    login(request, user)
    flash(request, f"Welcome, {user.name}! Start with the concept marked Next up.")
    return RedirectResponse("/concepts", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if session_user(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next), form={})


@router.post("/login", dependencies=[Csrf])
def login_submit(
    request: Request,
    web: WebDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=500)] = "/concepts",
) -> Response:
    user = accounts.authenticate(web.factory, email, password)
    if user is None:
        return render(
            request,
            "login.html",
            401,
            error="Wrong email or password.",
            next=_safe_next(next),
            form={"email": email},
        )
    login(request, user)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
