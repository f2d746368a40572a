"""The JSON API (`/api/v1`): what the pages do, for programs (`grader submit --server`, CI).

Authentication is a per-user bearer token. Errors are `{"detail": ...}` with the HTTP status
saying what kind: 401 no or bad token, 403 not allowed (a locked concept, a student asking an
instructor's question), 404 not there or not yours, 409 conflict, 413 too large, 422 invalid,
429 too many waiting submissions, 503 the queue is down.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from grader.notebooks import NOTEBOOK_MAX_BYTES
from grader.store import ExercisePackage, Submission, User
from grader.verdict import Verdict
from web import accounts, progress, services
from web.deps import MAX_ID, ApiTeacher, ApiUser, Id, WebDep
from web.routes.concepts import NOTEBOOK_MEDIA_TYPE, notebook_download
from web.routes.submissions import SSE_HEADERS

router = APIRouter(prefix="/api/v1", tags=["api"])
# a bound on the text alone: the byte limits (a concept's source_limit_bytes, notebook_limit_bytes)
# are checked when submitting, so a file just over one gets a 413 that names both sizes
MAX_SOURCE_CHARS = 2 * NOTEBOOK_MAX_BYTES
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or an unknown or revoked one"},
    404: {"description": "Not found (or not yours)"},
}


class ErrorOut(BaseModel):
    detail: str


class UserOut(BaseModel):
    id: int
    name: str
    email: str | None
    role: str
    plan: str


def _user(user: User) -> UserOut:
    return UserOut(id=user.id, name=user.name, email=user.email, role=user.role, plan=user.plan)


class TokenIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=256)
    name: str = Field(default="cli", max_length=100)


class TokenOut(BaseModel):
    id: int
    name: str
    token: str = Field(description="Shown once: keep it; only its hash is stored")


class ConceptOut(BaseModel):
    slug: str
    title: str
    summary: str
    track: str
    level: int
    minutes: int
    pro: bool
    status: Literal["locked", "unlocked", "passed"]
    locked_because: str = ""
    next_up: bool = Field(
        default=False,
        description="The concept to open next: the first open one in curriculum order (one at most)",
    )


class ConceptDetail(ConceptOut):
    lesson_markdown: str
    skeleton: str
    public_tests: str
    entrypoint: str
    source_limit_bytes: int
    notebook_limit_bytes: int = Field(description="The largest notebook (.ipynb) accepted")
    prerequisites: list[str]


class SubmissionIn(BaseModel):
    exercise: str = Field(max_length=100, description="The concept's slug, e.g. causal-masking")
    source: str = Field(
        max_length=MAX_SOURCE_CHARS,
        description=(
            "The Python file's text, at most the concept's source_limit_bytes; or, when filename "
            "ends in .ipynb, a Jupyter notebook's JSON text (at most notebook_limit_bytes), graded "
            "through its solution cells"
        ),
    )
    filename: str | None = Field(
        default=None,
        max_length=255,
        description="The file's name, by default the concept's entrypoint module (e.g. attention.py); "
        "a name ending in .ipynb makes source a notebook",
    )
    kind: Literal["submit", "public"] = Field(
        default="submit", description="submit: hidden tests and performance; public: the public tests only"
    )


class SubmissionOut(BaseModel):
    id: int
    exercise: str
    exercise_version: str
    kind: str
    state: str = Field(description="queued, running, done or system_error")
    status: str | None = Field(description="The verdict's status once done")
    attempt: int
    created_at: datetime.datetime
    finished_at: datetime.datetime | None
    user_id: Id | None
    url: str
    verdict: dict[str, Any] | None = None
    unlocked: list[str] = Field(default_factory=list, description="Concepts this pass unlocked")


def _submission(
    row: Submission, *, verdict: bool = False, unlocked: list[str] | None = None
) -> SubmissionOut:
    return SubmissionOut(
        id=row.id,
        exercise=row.exercise_version.slug,
        exercise_version=row.exercise_version.version,
        kind=row.kind,
        state=row.state,
        status=row.status,
        attempt=row.attempt,
        created_at=row.created_at,
        finished_at=row.finished_at,
        user_id=row.user_id,
        url=f"/submissions/{row.id}",
        # through the model: a verdict stored before a field existed gets it (its mistakes, its counts)
        verdict=Verdict.model_validate(row.verdict).model_dump(mode="json")
        if verdict and row.verdict
        else None,
        unlocked=unlocked or [],
    )


@router.post("/tokens", response_model=TokenOut, status_code=201, responses={401: {"model": ErrorOut}})
def create_token(body: TokenIn, web: WebDep) -> TokenOut:
    """Trade an email and password for an API token (for `grader submit --server`)."""
    user = accounts.authenticate(web.factory, body.email, body.password)
    if user is None:
        raise services.errors.Unauthenticated("Wrong email or password.")
    row, token = accounts.create_token(web.factory, user.id, body.name)
    return TokenOut(id=row.id, name=row.name, token=token)


@router.get("/me", response_model=UserOut, responses=ERRORS)
def me(user: ApiUser) -> UserOut:
    return _user(user)


@router.get("/concepts", response_model=list[ConceptOut], responses=ERRORS)
def concepts(user: ApiUser, web: WebDep) -> list[ConceptOut]:
    """Every concept in curriculum order, with your status and the one to open next."""
    tracks = services.concepts.concepts_for(web, user)
    upcoming = services.concepts.next_for(web, tracks)
    return [
        ConceptOut(
            slug=c.slug,
            title=c.title,
            summary=c.summary,
            track=t.track.id,
            level=c.level,
            minutes=c.minutes,
            pro=c.pro,
            status=c.status.value,
            locked_because=c.reason,
            next_up=upcoming is not None and c.slug == upcoming.slug,
        )
        for t in tracks
        for c in t.cards
    ]


@router.get("/concepts/{slug}", response_model=ConceptDetail, responses=ERRORS)
def concept(slug: Annotated[str, Field(max_length=100)], user: ApiUser, web: WebDep) -> ConceptDetail:
    """A concept's lesson, skeleton and public tests (never its hidden tests or solution)."""
    exercise = web.exercise(slug)
    c = services.concepts.card_for(web, user, slug)
    spec = exercise.spec
    return ConceptDetail(
        slug=c.slug,
        title=c.title,
        summary=c.summary,
        track=spec.track,
        level=c.level,
        minutes=c.minutes,
        pro=c.pro,
        status=c.status.value,
        locked_because=c.reason,
        lesson_markdown=exercise.readme.read_text(encoding="utf-8"),
        skeleton=exercise.skeleton.read_text(encoding="utf-8"),
        public_tests=exercise.public_tests.read_text(encoding="utf-8"),
        entrypoint=spec.entrypoint,
        source_limit_bytes=spec.source_kb * 1024,
        notebook_limit_bytes=NOTEBOOK_MAX_BYTES,
        prerequisites=list(spec.prerequisites),
    )


@router.get(
    "/concepts/{slug}/notebook",
    response_class=Response,
    responses={
        **ERRORS,
        200: {
            "content": {NOTEBOOK_MEDIA_TYPE: {"schema": {"type": "string"}}},
            "description": "The student notebook (nbformat 4, nbgrader cells) as an .ipynb file",
        },
        403: {"model": ErrorOut, "description": "The concept is locked"},
    },
)
def concept_notebook(slug: Annotated[str, Field(max_length=100)], user: ApiUser, web: WebDep) -> Response:
    """A concept's student notebook: the lesson, the skeleton as solution cells and the public
    tests as locked cells. Submit it back with `POST /submissions` and a filename ending in .ipynb."""
    return notebook_download(slug, services.concepts.student_notebook(web, user, slug))


@router.post(
    "/submissions",
    response_model=SubmissionOut,
    status_code=201,
    responses={
        **ERRORS,
        403: {"model": ErrorOut},
        413: {"model": ErrorOut},
        429: {"model": ErrorOut},
        503: {
            "model": ErrorOut,
            "description": "The grader is at capacity (see Retry-After) or the queue is down",
        },
    },
)
def create_submission(body: SubmissionIn, user: ApiUser, web: WebDep) -> SubmissionOut:
    """Queue a file (a Python file, or a notebook when `filename` ends in .ipynb) for grading;
    follow it with `GET /api/v1/submissions/{id}` or its events. When the grader is at capacity
    the answer is a 503 with `Retry-After` (seconds): nothing was queued; send it again then."""
    source = body.source.encode("utf-8")
    row = services.submissions.submit(web, user, body.exercise, source, body.filename, body.kind)
    return _submission(services.submissions.visible_submission(web, user, row.id))


@router.get("/submissions", response_model=list[SubmissionOut], responses=ERRORS)
def list_submissions(
    user: ApiUser,
    web: WebDep,
    exercise: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[SubmissionOut]:
    """Your submissions, newest first."""
    return [_submission(r) for r in services.submissions.history(web.factory, user.id, exercise, limit)]


@router.get("/submissions/{submission_id}", response_model=SubmissionOut, responses=ERRORS)
def get_submission(submission_id: Id, user: ApiUser, web: WebDep) -> SubmissionOut:
    """A submission with its verdict once graded."""
    row = services.submissions.visible_submission(web, user, submission_id)
    unlocked = [c.slug for c in services.submissions.unlocked_by(web, user, row)]
    return _submission(row, verdict=True, unlocked=unlocked)


@router.get(
    "/submissions/{submission_id}/events",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
def submission_events(request: Request, submission_id: Id, user: ApiUser, web: WebDep) -> StreamingResponse:
    """Server-sent events: `state` (queue position), `progress` (running test k of n), `done`."""
    services.submissions.visible_submission(web, user, submission_id)
    return StreamingResponse(
        progress.stream(web, request, submission_id), media_type="text/event-stream", headers=SSE_HEADERS
    )


# --- instructors ---------------------------------------------------------------------------


class RegradeIn(BaseModel):
    submission_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=1000)
    live_version: bool = Field(default=True, description="Grade against the exercise's current version")


class RegradeOut(BaseModel):
    queued: int


class PackageOut(BaseModel):
    id: int
    slug: str
    version: str
    title: str
    origin: str
    state: str
    message: str | None
    report: dict[str, Any] | None
    created_at: datetime.datetime
    validated_at: datetime.datetime | None
    published_at: datetime.datetime | None
    progress: dict[str, Any] | None = Field(
        default=None,
        description="While validating: the check running now (`subject`, `current` of `total`, `message`)",
    )


def _package(row: ExercisePackage, running: dict[str, Any] | None = None) -> PackageOut:
    return PackageOut(
        id=row.id,
        slug=row.slug,
        version=row.version,
        title=row.title,
        origin=row.origin,
        state=row.state,
        message=row.message,
        report=row.report,
        created_at=row.created_at,
        validated_at=row.validated_at,
        published_at=row.published_at,
        progress=running,
    )


class CohortOut(BaseModel):
    concepts: list[dict[str, Any]]
    students: list[dict[str, Any]]


TEACHER_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 403: {"description": "Instructors only"}}


@router.get("/instructor/cohort", response_model=CohortOut, responses=TEACHER_ERRORS)
def cohort(user: ApiTeacher, web: WebDep) -> CohortOut:
    """Students x concepts: passed, attempts and last status; pass rate and median attempts."""
    data = services.cohort.cohort(web)
    return CohortOut(
        concepts=[
            {
                "slug": s.slug,
                "title": s.title,
                "learners": s.learners,
                "passed": s.passed,
                "pass_rate": s.pass_rate,
                "median_attempts": s.median_attempts,
            }
            for s in data.stats
        ],
        students=[
            {
                "id": s.id,
                "name": s.name,
                "email": s.email,
                "plan": s.plan,
                "concepts": {
                    slug: {"passed": cell.passed, "attempts": cell.attempts, "last_status": cell.last_status}
                    for (uid, slug), cell in data.cells.items()
                    if uid == s.id
                },
            }
            for s in data.students
        ],
    )


class HintOut(BaseModel):
    hint: str
    tests: list[str] = Field(description="The test functions that carried it")
    visibility: list[str] = Field(description="Of those tests: hidden, public or both")
    results: int = Field(description="Failing test results carrying it")
    submissions: int = Field(description="Submissions it fired in")
    students: int
    cleared: int = Field(description="Students who got past it")
    stuck: int = Field(description="Students who have not got past it (yet)")
    median_attempts: float | None = Field(
        description="Median, over those who got past it, of the submissions after the first showing it "
        "up to and including the first past it (1: the next one)"
    )
    max_attempts: int | None


class VariantOut(BaseModel):
    name: str = Field(description="The known-wrong variant's file in solutions/<slug>/wrong/, without .py")
    why: str
    expect: str
    tests: list[str] = Field(description="The test functions it fails; none: compared with nothing")
    submissions: int = Field(description="Submissions that failed exactly these test functions")
    students: int


class MistakesOut(BaseModel):
    exercise: str
    version: str = Field(description="The live version, whose known-wrong variants are compared")
    submissions: int = Field(description="Graded submissions of students looked at")
    students: int
    failing: int = Field(description="Submissions with at least one failing test")
    hints: list[HintOut] = Field(description="The hints that fired, the most students first")
    variants: list[VariantOut] | None = Field(
        description="The known-wrong variants the submissions behaved like; null until the live version's "
        "validation says which tests each fails (see variants_note)"
    )
    matched: int = Field(description="Failing submissions that behaved like at least one variant")
    variants_note: str = ""
    validation: int | None = Field(description="The live version's validation (a package id), if any")


@router.get("/instructor/exercises/{slug}/mistakes", response_model=MistakesOut, responses=TEACHER_ERRORS)
def mistakes(slug: Annotated[str, Field(max_length=100)], user: ApiTeacher, web: WebDep) -> MistakesOut:
    """What the students get wrong in an exercise: the hints that fired (how often, on how many
    students, how many attempts it took to get past each) and the known-wrong variants their
    submissions behaved like (the same failing test functions)."""
    data = services.cohort.exercise_mistakes(web, slug)
    found = data.mistakes
    return MistakesOut(
        exercise=data.slug,
        version=data.version,
        submissions=found.submissions,
        students=found.students,
        failing=found.failing,
        hints=[
            HintOut(
                hint=h.hint,
                tests=list(h.tests),
                visibility=list(h.visibility),
                results=h.results,
                submissions=h.submissions,
                students=h.students,
                cleared=h.cleared,
                stuck=h.stuck,
                median_attempts=h.median_attempts,
                max_attempts=h.max_attempts,
            )
            for h in found.hints
        ],
        variants=None
        if found.variants is None
        else [
            VariantOut(
                name=v.name,
                why=v.why,
                expect=v.expect,
                tests=list(v.tests),
                submissions=v.submissions,
                students=v.students,
            )
            for v in found.variants
        ],
        matched=found.matched,
        variants_note=data.variants_note,
        validation=data.validation.id if data.validation is not None else None,
    )


@router.get("/instructor/submissions", response_model=list[SubmissionOut], responses=TEACHER_ERRORS)
def browse(
    user: ApiTeacher,
    web: WebDep,
    who: Annotated[str | None, Query(max_length=200)] = None,
    exercise: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[SubmissionOut]:
    where = services.submissions.SubmissionFilter(
        user=who, exercise=exercise, status=status, limit=limit, offset=offset
    )
    rows, _ = services.submissions.browse(web, where)
    return [_submission(r) for r in rows]


@router.post("/instructor/regrade", response_model=RegradeOut, responses=TEACHER_ERRORS)
def regrade(body: RegradeIn, user: ApiTeacher, web: WebDep) -> RegradeOut:
    """Queue finished submissions again (those still queued or running are left alone)."""
    queued = services.submissions.regrade(web, body.submission_ids, live_version=body.live_version)
    return RegradeOut(queued=queued)


@router.get("/instructor/queue", responses=TEACHER_ERRORS)
def queue(user: ApiTeacher, web: WebDep) -> dict[str, Any]:
    """Queues, workers and recent failures."""
    overview = services.queue.queue_overview(web)
    overview["failures"] = [
        {"id": r.id, "exercise": r.exercise_version.slug, "message": r.message} for r in overview["failures"]
    ]
    return overview


@router.post(
    "/instructor/packages",
    response_model=PackageOut,
    status_code=201,
    responses={**TEACHER_ERRORS, 409: {"model": ErrorOut}, 413: {"model": ErrorOut}},
)
async def upload(user: ApiTeacher, web: WebDep, file: Annotated[UploadFile, File()]) -> PackageOut:
    """Upload an exercise (a new one or a new version) as a zip; it is validated through the
    queue before it can be published."""
    data = await file.read(20 * 1024 * 1024 + 1)
    if len(data) > 20 * 1024 * 1024:
        raise services.errors.TooLarge("the zip is larger than 20 MB")
    return _package(services.packages.upload(web, user, data))


@router.get("/instructor/packages/{package_id}", response_model=PackageOut, responses=TEACHER_ERRORS)
def package(package_id: Id, user: ApiTeacher, web: WebDep) -> PackageOut:
    """A package, its validation's report, and while it validates the check running now."""
    row = services.packages.get_package(web, package_id)
    return _package(row, services.packages.progress(web, row))


@router.get(
    "/instructor/packages/{package_id}/events",
    responses={
        **TEACHER_ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
    },
)
def package_events(request: Request, package_id: Id, user: ApiTeacher, web: WebDep) -> StreamingResponse:
    """Server-sent events of the package's validation: `state` (with the check running now),
    `progress` (each check as it begins, "checking wrong/loop (5 of 14)", and as it ends), `done`."""
    services.packages.get_package(web, package_id)
    return StreamingResponse(
        progress.package_stream(web, request, package_id), media_type="text/event-stream", headers=SSE_HEADERS
    )


@router.post(
    "/instructor/packages/{package_id}/publish",
    response_model=PackageOut,
    responses={**TEACHER_ERRORS, 409: {"model": ErrorOut}},
)
def publish(package_id: Id, user: ApiTeacher, web: WebDep) -> PackageOut:
    """Make a validated package the version students see."""
    return _package(services.packages.publish(web, package_id))
