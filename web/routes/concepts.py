"""The concept map, a concept's page, and submitting from it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from grader.store import User
from web import markdown, services
from web.concepts import ConceptStatus
from web.deps import Csrf, PageUser, WebDep, render
from web.services import Web

router = APIRouter(include_in_schema=False)


@router.get("/concepts")
def concept_map(request: Request, user: PageUser, web: WebDep) -> Response:
    tracks = services.concepts_for(web, user)
    total = sum(len(t.cards) for t in tracks)
    passed = sum(t.passed for t in tracks)
    return render(request, "concepts.html", tracks=tracks, total=total, passed=passed)


@router.get("/concepts/{slug}")
def concept_page(request: Request, slug: str, user: PageUser, web: WebDep) -> Response:
    return _concept(request, slug, user, web)


def _concept(
    request: Request,
    slug: str,
    user: User,
    web: Web,
    *,
    source: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    exercise = web.exercise(slug)
    card = services.card_for(web, user, slug)
    history = services.history(web.factory, user.id, slug)
    if source is None:
        source = history[0].source.decode("utf-8", "replace") if history else exercise.skeleton.read_text()
    return render(
        request,
        "concept.html",
        status,
        exercise=exercise,
        card=card,
        locked=card.status is ConceptStatus.LOCKED,
        lesson=markdown.render(exercise.readme.read_text(encoding="utf-8")),
        source=source,
        skeleton=exercise.skeleton.read_text(encoding="utf-8"),
        public_tests=exercise.public_tests.read_text(encoding="utf-8"),
        history=history,
        error=error,
    )


@router.post("/concepts/{slug}/submissions", dependencies=[Csrf])
async def submit(
    request: Request,
    slug: str,
    user: PageUser,
    web: WebDep,
    source: Annotated[str, Form(max_length=4 * 1024 * 1024)] = "",
    kind: Annotated[str, Form(max_length=16)] = "submit",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    raw = source.encode("utf-8")
    filename = f"{slug.replace('-', '_')}.py"
    if file is not None and file.filename:
        raw = await file.read(4 * 1024 * 1024 + 1)
        filename = file.filename
    try:
        row = services.submit(web, user, slug, raw, filename, kind)
    except services.ServiceError as exc:
        if exc.status == 404:
            raise
        # the page again, with the reason and what the learner wrote
        return _concept(request, slug, user, web, source=source, error=exc.message, status=exc.status)
    return RedirectResponse(f"/submissions/{row.id}", status_code=303)
