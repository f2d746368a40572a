"""The concept map, a concept's page, and submitting from it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from grader.notebooks import NOTEBOOK_MAX_BYTES
from grader.store import User
from web import markdown, services
from web.concepts import ConceptStatus
from web.deps import Csrf, PageUser, WebDep, render
from web.http import status_of
from web.services import Web

router = APIRouter(include_in_schema=False)
NOTEBOOK_MEDIA_TYPE = "application/x-ipynb+json"


@router.get("/concepts")
def concept_map(request: Request, user: PageUser, web: WebDep) -> Response:
    tracks = services.concepts.concepts_for(web, user)
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
    card = services.concepts.card_for(web, user, slug)
    history = services.submissions.history(web.factory, user.id, slug)
    if source is None:
        source = services.concepts.editor_source(exercise, history[0] if history else None)
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
        notebook_limit=services.submissions.human_size(NOTEBOOK_MAX_BYTES),
    )


@router.get("/concepts/{slug}/notebook")
def concept_notebook(slug: str, user: PageUser, web: WebDep) -> Response:
    """The concept's student notebook, as a download (refused while the concept is locked)."""
    return notebook_download(slug, services.concepts.student_notebook(web, user, slug))


def notebook_download(slug: str, data: bytes) -> Response:
    """An .ipynb file the browser saves as `<slug>.ipynb`."""
    return Response(
        data,
        media_type=NOTEBOOK_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{slug}.ipynb"'},
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
    size = None
    if file is not None and file.filename:
        # a notebook may be larger than a .py: read up to the larger limit, and say the real size
        raw = await file.read(NOTEBOOK_MAX_BYTES + 1)
        filename = file.filename
        size = file.size
    try:
        row = services.submissions.submit(web, user, slug, raw, filename, kind, size=size)
    except services.errors.NotFound:
        raise
    except services.ServiceError as exc:
        # the page again, with the reason and what the learner wrote
        return _concept(request, slug, user, web, source=source, error=exc.message, status=status_of(exc))
    return RedirectResponse(f"/submissions/{row.id}", status_code=303)
