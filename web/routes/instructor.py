"""Instructors' pages: exercises and their validation, uploads, the cohort, submissions, the queue.

Every route here needs the instructor (or admin) role; hidden tests and solutions are shown on
these pages and nowhere else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from grader.library import exercise_folders
from web import progress, services
from web.deps import MAX_ID, Csrf, Id, TeacherPage, WebDep, flash, render
from web.http import status_of
from web.routes.submissions import SSE_HEADERS

router = APIRouter(prefix="/instructor", include_in_schema=False)
MAX_ZIP = 20 * 1024 * 1024


@router.get("")
def home(user: TeacherPage) -> Response:
    return RedirectResponse("/instructor/exercises", status_code=303)


@router.get("/exercises")
def exercises(request: Request, user: TeacherPage, web: WebDep) -> Response:
    rows, broken = services.packages.exercise_rows(web)
    return render(request, "instructor/exercises.html", rows=rows, broken=broken)


@router.get("/exercises/{slug}")
def exercise(request: Request, slug: str, user: TeacherPage, web: WebDep) -> Response:
    packages = services.packages.packages_of(web, slug)
    try:
        live = web.exercise(slug)
    except services.ServiceError:
        live = None
        if not packages:
            raise
    files: list[tuple[str, str]] = []
    if live is not None:
        for path in sorted(live.solution_dir.rglob("*.py")):
            files.append(
                (f"solutions/{path.relative_to(live.solution_dir)}", path.read_text("utf-8", "replace"))
            )
    return render(
        request,
        "instructor/exercise.html",
        slug=slug,
        live=live,
        packages=packages,
        versions=services.packages.versions_of(web, slug),
        files=files,
        mistakes=services.cohort.exercise_mistakes(web, slug) if live is not None else None,
    )


@router.post("/exercises/{slug}/validate", dependencies=[Csrf])
def validate(request: Request, slug: str, user: TeacherPage, web: WebDep) -> Response:
    package = services.packages.validate_live(web, slug)
    flash(request, f"Validation of {slug} queued.")
    return RedirectResponse(f"/instructor/packages/{package.id}", status_code=303)


@router.get("/upload")
def upload_page(request: Request, user: TeacherPage) -> Response:
    return render(request, "instructor/upload.html")


@router.post("/upload", dependencies=[Csrf])
async def upload(
    request: Request, user: TeacherPage, web: WebDep, file: Annotated[UploadFile | None, File()] = None
) -> Response:
    if file is None or not file.filename:
        return render(request, "instructor/upload.html", 422, error="Choose a zip file to upload.")
    data = await file.read(MAX_ZIP + 1)
    if len(data) > MAX_ZIP:
        return render(
            request, "instructor/upload.html", 413, error=f"The zip is larger than {MAX_ZIP // 2**20} MB."
        )
    try:
        package = services.packages.upload(web, user, data)
    except services.ServiceError as exc:
        return render(request, "instructor/upload.html", status_of(exc), error=exc.message)
    flash(request, f"Uploaded {package.slug}; validation is queued.")
    return RedirectResponse(f"/instructor/packages/{package.id}", status_code=303)


@router.get("/packages/{package_id}")
def package(request: Request, package_id: Id, user: TeacherPage, web: WebDep) -> Response:
    row = services.packages.get_package(web, package_id)
    files: list[tuple[str, str]] = []
    if row.path:
        root = web.settings.data_dir / row.path
        try:
            exercise_dir, solutions_dir = exercise_folders(root)
            for base, label in ((exercise_dir, "exercise"), (solutions_dir, "solutions")):
                for path in sorted(base.rglob("*")):
                    if path.is_file() and path.suffix in (".py", ".toml", ".md"):
                        files.append(
                            (f"{label}/{path.relative_to(base)}", path.read_text("utf-8", "replace"))
                        )
        except Exception:  # noqa: BLE001 - a package whose files are gone is still listed
            files = []
    now = services.packages.progress(web, row)
    return render(request, "instructor/package.html", package=row, files=files, progress=now)


@router.get("/packages/{package_id}/state")
def package_state(package_id: Id, user: TeacherPage, web: WebDep) -> Response:
    row = services.packages.get_package(web, package_id)
    now = services.packages.progress(web, row)
    return JSONResponse({"id": row.id, "state": row.state, "message": row.message, "progress": now})


@router.get("/packages/{package_id}/events")
def package_events(request: Request, package_id: Id, user: TeacherPage, web: WebDep) -> Response:
    """Server-sent events of the package's validation (see `web.progress.package_stream`)."""
    services.packages.get_package(web, package_id)
    return StreamingResponse(
        progress.package_stream(web, request, package_id),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.post("/packages/{package_id}/publish", dependencies=[Csrf])
def publish(request: Request, package_id: Id, user: TeacherPage, web: WebDep) -> Response:
    try:
        row = services.packages.publish(web, package_id)
        flash(request, f"Published: students now see this version of {row.slug}.")
    except services.errors.NotFound:
        raise
    except services.ServiceError as exc:
        flash(request, exc.message, "error")
    return RedirectResponse(f"/instructor/packages/{package_id}", status_code=303)


@router.post("/packages/{package_id}/validate", dependencies=[Csrf])
def revalidate(request: Request, package_id: Id, user: TeacherPage, web: WebDep) -> Response:
    try:
        services.packages.revalidate(web, package_id)
        flash(request, "Validation queued again.")
    except services.errors.Conflict as exc:
        flash(request, exc.message, "error")
    return RedirectResponse(f"/instructor/packages/{package_id}", status_code=303)


@router.get("/cohort")
def cohort(
    request: Request,
    user: TeacherPage,
    web: WebDep,
    roster: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    lti = services.cohort.lti_cohort(web, fetch=roster)  # `roster`: the course whose members to fetch
    return render(request, "instructor/cohort.html", cohort=services.cohort.cohort(web), lti=lti)


@router.post("/cohort/lti-pushes/retry", dependencies=[Csrf])
def retry_lti_pushes(
    request: Request,
    user: TeacherPage,
    web: WebDep,
    push: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
) -> Response:
    """Send a grade that did not reach its platform again (`push`), or every such grade."""
    count = services.cohort.retry_pushes(web, [push] if push is not None else None)
    flash(
        request,
        f"{count} grade{'' if count == 1 else 's'} queued to be sent again."
        if count
        else "Nothing to send again.",
    )
    return RedirectResponse("/instructor/cohort#lti", status_code=303)


@router.post("/users/{user_id}/plan", dependencies=[Csrf])
def set_plan(
    request: Request,
    user_id: Id,
    user: TeacherPage,
    web: WebDep,
    plan: Annotated[str, Form(pattern="^(free|pro)$")] = "free",
) -> Response:
    services.users.set_plan(web, user_id, plan)
    flash(request, f"Plan set to {plan}.")
    return RedirectResponse("/instructor/cohort", status_code=303)


@router.get("/submissions")
def submissions(
    request: Request,
    user: TeacherPage,
    web: WebDep,
    who: Annotated[str | None, Query(max_length=200)] = None,
    exercise: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    kind: Annotated[str | None, Query(max_length=8)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    where = services.submissions.SubmissionFilter(
        user=who or None,
        exercise=exercise or None,
        status=status or None,
        kind=kind or None,
        limit=50,
        offset=(page - 1) * 50,
    )
    rows, total = services.submissions.browse(web, where)
    return render(
        request,
        "instructor/submissions.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // 50)),
        where=where,
        slugs=[e.slug for e in web.catalog()],
    )


@router.post("/submissions/regrade", dependencies=[Csrf])
async def regrade(request: Request, user: TeacherPage, web: WebDep) -> Response:
    form = await request.form()
    ids = []
    for value in form.getlist("ids"):
        if isinstance(value, str) and value.isdigit() and 0 < int(value) <= MAX_ID:
            ids.append(int(value))
    if not ids:
        flash(request, "Select the submissions to regrade.", "error")
    else:
        count = services.submissions.regrade(web, ids)
        skipped = len(ids) - count
        flash(
            request,
            f"{count} queued for regrading"
            + (f"; {skipped} still in progress, left alone" if skipped else "")
            + ".",
        )
    back = form.get("back")
    return RedirectResponse(
        back if isinstance(back, str) and back.startswith("/instructor/") else "/instructor/submissions",
        status_code=303,
    )


@router.get("/queue")
def queue(request: Request, user: TeacherPage, web: WebDep) -> Response:
    try:
        overview = services.queue.queue_overview(web)
        error = None
    except services.ServiceError as exc:
        overview, error = None, exc.message
    return render(request, "instructor/queue.html", overview=overview, error=error)
