"""The concept map, a concept's page, and submitting from it."""

from __future__ import annotations

import contextlib
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from grader.notebooks import NOTEBOOK_MAX_BYTES
from web import markdown, services
from web.concepts import ConceptStatus
from web.deps import PageUser, WebDep, render, verify_csrf

router = APIRouter(include_in_schema=False)
NOTEBOOK_MEDIA_TYPE = "application/x-ipynb+json"
# Pasted code is read up to this size: the most an exercise takes (its source_kb is at most 4096)
# with every line break sent as CRLF, as a browser sends a text box. Larger code is refused unread.
PASTE_MAX_BYTES = 8 * 1024 * 1024
DRAIN_MAX_BYTES = 64 * 1024 * 1024
REFUSAL_KEY = "concept_refusal"  # in the session: why the last submission was refused, until shown


@router.get("/concepts")
def concept_map(request: Request, user: PageUser, web: WebDep) -> Response:
    tracks = services.concepts.concepts_for(web, user)
    total = sum(len(t.cards) for t in tracks)
    passed = sum(t.passed for t in tracks)
    upcoming = services.concepts.next_for(web, tracks)
    return render(request, "concepts.html", tracks=tracks, total=total, passed=passed, upcoming=upcoming)


@router.get("/concepts/{slug}")
def concept_page(request: Request, slug: str, user: PageUser, web: WebDep) -> Response:
    """The lesson, the editor and the history. Never stored by the browser (`no-store`): going
    back to it asks for it again, so the history and the editor are as they are now."""
    exercise = web.exercise(slug)
    note = request.session.pop(REFUSAL_KEY, None)  # shown once, on this concept's page only
    error = note.get("message") if isinstance(note, dict) and note.get("slug") == slug else None
    card = services.concepts.card_for(web, user, slug)
    history = services.submissions.history(web.factory, user.id, slug)
    module = services.submissions.module_filename(exercise)
    response: Response = render(
        request,
        "concept.html",
        exercise=exercise,
        card=card,
        locked=card.status is ConceptStatus.LOCKED,
        lesson=markdown.render(exercise.readme.read_text(encoding="utf-8")),
        source=services.concepts.editor_source(exercise, history[0] if history else None),
        latest=history[0].id if history else "",
        skeleton=exercise.skeleton.read_text(encoding="utf-8"),
        public_tests=exercise.public_tests.read_text(encoding="utf-8"),
        history=history,
        error=error,
        module=module,
        source_limit=exercise.spec.source_kb * 1024,
        notebook_max=NOTEBOOK_MAX_BYTES,
        notebook_limit=services.submissions.human_size(NOTEBOOK_MAX_BYTES),
        # the size refusals, for the browser to say before sending (it fills in name and size)
        too_large_module=services.submissions.too_large(exercise, "{name}", "{size}", notebook=False),
        too_large_notebook=services.submissions.too_large(exercise, "{name}", "{size}", notebook=True),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


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


@router.post("/concepts/{slug}/submissions")
async def submit(request: Request, slug: str, user: PageUser, web: WebDep) -> Response:
    """Queue the editor's code, or the uploaded file, and go to its page. A refusal goes back to
    the concept's page, which says why (Post/Redirect/Get: reloading that page sends nothing
    again); the code is kept by the browser, in the page's draft."""
    web.exercise(slug)  # an unknown concept is a 404, before anything is read
    try:
        form = await request.form(max_part_size=PASTE_MAX_BYTES)
    except StarletteHTTPException:
        sent = declared_size(request)
        if sent <= PASTE_MAX_BYTES:
            raise  # malformed, not too large
        # pasted code larger than is ever read: refused by the request's size. Nothing is stored,
        # so the CSRF token (in the unread part of the form) is not needed to say so.
        await drain(request)
        try:
            services.submissions.refuse_unread(web, user, slug, sent)
        except services.ServiceError as exc:
            return back_to_concept(request, slug, exc.message)
    try:
        verify_csrf(request, form)
        source, kind, file = form.get("source", ""), form.get("kind", "submit"), form.get("file")
        # a text box sends its line breaks as CRLF: the code is what was typed, with LF
        raw = source.replace("\r\n", "\n").encode("utf-8") if isinstance(source, str) else b""
        filename, size = None, None
        if isinstance(file, UploadFile) and file.filename:
            # a notebook may be larger than a .py: read up to the larger limit, and say the real size
            raw = await file.read(NOTEBOOK_MAX_BYTES + 1)
            filename, size = file.filename, file.size
        try:
            row = services.submissions.submit(
                web, user, slug, raw, filename, kind if isinstance(kind, str) else "", size=size
            )
        except services.errors.NotFound:
            raise
        except services.ServiceError as exc:
            return back_to_concept(request, slug, exc.message)
    finally:
        await form.close()
    return RedirectResponse(f"/submissions/{row.id}", status_code=303)


def back_to_concept(request: Request, slug: str, message: str) -> Response:
    """To the concept's page (303), which shows `message` once where the learner submits."""
    request.session[REFUSAL_KEY] = {"slug": slug, "message": message}
    return RedirectResponse(f"/concepts/{quote(slug)}", status_code=303)


def declared_size(request: Request) -> int:
    """The request body's size as its Content-Length says (0 when it says nothing usable)."""
    try:
        return max(int(request.headers.get("content-length", "")), 0)
    except ValueError:
        return 0


async def drain(request: Request) -> None:
    """Read and drop the rest of a request answered before it was read (up to DRAIN_MAX_BYTES):
    a browser still sending it then reads the answer rather than a broken connection."""
    read = 0
    with contextlib.suppress(ClientDisconnect, RuntimeError):  # gone, or nothing left to read
        async for chunk in request.stream():
            read += len(chunk)
            if read > DRAIN_MAX_BYTES:
                break
