"""The learner's account: plan, API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from web import accounts
from web.deps import Csrf, Id, PageUser, WebDep, flash, render

router = APIRouter(include_in_schema=False)


@router.get("/account")
def account(request: Request, user: PageUser, web: WebDep) -> Response:
    return render(request, "account.html", tokens=accounts.tokens_of(web.factory, user.id), new_token=None)


@router.post("/account/tokens", dependencies=[Csrf])
def new_token(
    request: Request, user: PageUser, web: WebDep, name: Annotated[str, Form(max_length=100)] = "token"
) -> Response:
    _, token = accounts.create_token(web.factory, user.id, name)
    # shown once, on this response only (never kept in the session cookie)
    return render(
        request, "account.html", 201, tokens=accounts.tokens_of(web.factory, user.id), new_token=token
    )


@router.post("/account/tokens/{token_id}/revoke", dependencies=[Csrf])
def revoke(request: Request, token_id: Id, user: PageUser, web: WebDep) -> Response:
    if accounts.revoke_token(web.factory, user.id, token_id):
        flash(request, "Token revoked.")
    return RedirectResponse("/account", status_code=303)
