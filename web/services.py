"""What the pages and the JSON API do, in one place: both call these and only render differently.

Every function that returns a submission or an exercise's files checks who is asking: a student
sees their own submissions and the student-visible half of an exercise; instructors and admins
see everything. A submission that is not yours is "not found", never "forbidden", so its
existence is not revealed either.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import statistics
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog import Catalog, CatalogError, Exercise, UnknownExercise
from grader.jobs import packages as jobpackages
from grader.jobs import queue as jobqueue
from grader.jobs import submissions
from grader.library import Library, package_root
from grader.notebooks import is_notebook, module_from_notebook, submission_limit
from grader.settings import Settings
from grader.static import Rejected
from grader.store import (
    Attempt,
    ExercisePackage,
    ExerciseVersion,
    PackageState,
    Role,
    Submission,
    User,
    transaction,
)
from grader.store.models import utcnow
from grader.verdict import NotebookCell, Verdict
from web.concepts import ConceptCard, ConceptStatus, Plan, TrackView, card, concept_map, newly_unlocked

MAX_ACTIVE_PER_USER = 3  # queued or running submissions one learner may have at once


class ServiceError(Exception):
    """A request refused for a reason the user can act on; `status` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotFound(ServiceError):
    def __init__(self, what: str) -> None:
        super().__init__(404, f"{what} not found")


@dataclass
class Web:
    """What every request needs: settings, the database, Redis (connected lazily) and the
    exercise library."""

    settings: Settings
    factory: sessionmaker[Session]
    library: Library
    _redis: Redis | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def redis(self) -> Redis:
        with self._lock:
            if self._redis is None:
                try:
                    self._redis = jobqueue.connect(self.settings.redis_url)
                except jobqueue.QueueError as exc:
                    raise ServiceError(503, f"the queue is unavailable: {exc}") from None
            return self._redis

    def catalog(self) -> Catalog:
        return self.library.live(self.factory)

    def exercise(self, slug: str) -> Exercise:
        try:
            return self.catalog().get(slug)
        except (UnknownExercise, KeyError):
            raise NotFound(f"concept {slug!r}") from None
        except Exception:  # a broken exercise is not shown to learners
            raise NotFound(f"concept {slug!r}") from None


def plan_of(user: User) -> Plan:
    return Plan.PRO if user.plan == "pro" or Role(user.role).teaches else Plan.FREE


def passed_slugs(factory: sessionmaker[Session], user_id: int) -> set[str]:
    """Concepts the learner passed: a submission whose verdict is a pass, or any attempt of one
    that passed (a regrade, pending or failing, never takes a pass away)."""
    with factory() as session:
        now = session.execute(
            select(ExerciseVersion.slug)
            .join(Submission, Submission.exercise_version_id == ExerciseVersion.id)
            .where(Submission.user_id == user_id, Submission.kind == "submit", Submission.status == "passed")
            .distinct()
        ).all()
        before = session.execute(
            select(ExerciseVersion.slug)
            .join(Submission, Submission.exercise_version_id == ExerciseVersion.id)
            .join(Attempt, Attempt.submission_id == Submission.id)
            .where(Submission.user_id == user_id, Submission.kind == "submit", Attempt.outcome == "passed")
            .distinct()
        ).all()
    return {slug for (slug,) in [*now, *before]}


def concepts_for(web: Web, user: User) -> list[TrackView]:
    return concept_map(web.catalog(), passed=passed_slugs(web.factory, user.id), plan=plan_of(user))


def card_for(web: Web, user: User, slug: str) -> ConceptCard:
    catalog = web.catalog()
    exercise = web.exercise(slug)
    return card(exercise, passed=passed_slugs(web.factory, user.id), plan=plan_of(user), order=catalog.order)


def unlocked_exercise(web: Web, user: User, slug: str) -> Exercise:
    """The exercise behind concept `slug`, or 403 when the learner has not unlocked it."""
    exercise = web.exercise(slug)
    concept = card_for(web, user, slug)
    if concept.status is ConceptStatus.LOCKED:
        raise ServiceError(403, f"{exercise.spec.title} is locked: {concept.reason}.")
    return exercise


def human_size(n: int) -> str:
    """A byte count as a person reads it: 900 bytes, 64 KB, 8.5 MB (rounded up, so a file just
    over a limit never reads as equal to it)."""
    if n < 1024:
        return f"{n} bytes"
    unit, name = (1024, "KB") if n < 1024 * 1024 else (1024 * 1024, "MB")
    value = math.ceil(n * 10 / unit) / 10
    return f"{value:g} {name}"


def submit(
    web: Web,
    user: User,
    slug: str,
    source: bytes,
    filename: str,
    kind: str,
    *,
    size: int | None = None,
) -> Submission:
    """Queue `source` for grading: "submit" runs the hidden tests and the performance checks,
    "public" only the public tests (quick feedback; it never counts as a pass). `filename`
    decides how it is read: a `.ipynb` is a notebook, graded through its solution cells. `size`
    is the upload's real size when only its first bytes were read."""
    if kind not in submissions.KINDS:
        raise ServiceError(422, f"kind must be one of {', '.join(submissions.KINDS)}")
    exercise = unlocked_exercise(web, user, slug)
    filename = Path(filename or "solution.py").name[:255] or "solution.py"
    limit = submission_limit(exercise.spec.source_kb, filename)
    real = max(len(source), size or 0)
    if real > limit:
        if is_notebook(filename):
            raise ServiceError(
                413,
                f"{filename} is {human_size(real)}; a notebook may be at most {human_size(limit)}. "
                "Clear its outputs (Edit > Clear All Outputs), save it and upload it again.",
            )
        raise ServiceError(
            413,
            f"{filename} is {human_size(real)}; {exercise.spec.title} takes files of at most "
            f"{human_size(limit)}.",
        )
    if not source.strip():
        raise ServiceError(422, "the submission is empty")
    with web.factory() as session:
        active = session.scalar(
            select(func.count())
            .select_from(Submission)
            .where(Submission.user_id == user.id, Submission.state.in_(("queued", "running")))
        )
    if active and active >= MAX_ACTIVE_PER_USER:
        raise ServiceError(429, f"you have {active} submissions waiting; wait for one to finish")
    redis = web.redis()
    row = submissions.create(web.factory, exercise, source, filename, user_id=user.id, kind=kind)
    assert row.job_id is not None
    with contextlib.suppress(RedisError):  # the reconciler enqueues it once Redis is back
        jobqueue.enqueue(redis, row.queue, row.id, row.attempt, row.job_id)
    return row


def visible_submission(web: Web, user: User, submission_id: int) -> Submission:
    with web.factory() as session:
        row = session.get(Submission, submission_id)
        if row is None or (row.user_id != user.id and not Role(user.role).teaches):
            raise NotFound(f"submission {submission_id}")
        row.exercise_version  # noqa: B018 - loaded while the session is open
        row.user  # noqa: B018
        session.expunge_all()
        return row


@dataclass(frozen=True)
class GradedModule:
    """What a notebook submission became: the module its cells make, which is what is graded."""

    notebook: str  # the notebook's file name
    module: str  # the module's file name, e.g. attention.py
    source: str  # the module's text; the notebook's own text when no module could be made
    cells: list[NotebookCell]
    notes: list[str]
    problem: str | None = None  # why no module could be made


def graded_module(web: Web, row: Submission, verdict: Verdict | None = None) -> GradedModule | None:
    """The module a notebook submission was graded as (None for a plain file), with the cells
    it came from: those the verdict records when it has them, else those extracted now."""
    if not is_notebook(row.filename, row.source):
        return None
    slug = row.exercise_version.slug
    try:
        exercise = web.library.exercise_at(web.factory, slug, row.exercise_version.version)
    except (CatalogError, KeyError, OSError):  # gone from the catalog: show the notebook as it is
        exercise = None
    recorded = verdict.notebook if verdict is not None else None
    module = recorded.module if recorded else f"{exercise.spec.entrypoint}.py" if exercise else ""
    raw_text = row.source.decode("utf-8", "replace")
    if exercise is None:
        return GradedModule(row.filename, module, raw_text, [], [], f"{slug} is no longer in the catalog")
    try:
        extraction = module_from_notebook(row.source, exercise, row.filename)
    except Rejected as exc:
        cells = list(recorded.cells) if recorded else []
        return GradedModule(row.filename, module, raw_text, cells, [], exc.message)
    return GradedModule(
        notebook=row.filename,
        module=recorded.module if recorded else extraction.module,
        source=extraction.source,
        cells=list(recorded.cells) if recorded else extraction.cells,
        notes=list(recorded.notes) if recorded else extraction.notes,
    )


def editor_source(exercise: Exercise, last: Submission | None) -> str:
    """What the concept page's editor starts with: the last submission's code (the module made
    from it, for a notebook), else the skeleton."""
    skeleton = exercise.skeleton.read_text(encoding="utf-8")
    if last is None:
        return skeleton
    if not is_notebook(last.filename, last.source):
        return last.source.decode("utf-8", "replace")
    try:
        return module_from_notebook(last.source, exercise, last.filename).source
    except Rejected:
        return skeleton


def student_notebook(web: Web, user: User, slug: str) -> bytes:
    """The notebook released to students for concept `slug` (403 while it is locked)."""
    from grader.notebooks.release import notebook_bytes

    return notebook_bytes(unlocked_exercise(web, user, slug))


def history(
    factory: sessionmaker[Session], user_id: int, slug: str | None = None, limit: int = 50
) -> list[Submission]:
    with factory() as session:
        query = (
            select(Submission)
            .join(ExerciseVersion)
            .where(Submission.user_id == user_id)
            .order_by(Submission.id.desc())
            .limit(limit)
        )
        if slug is not None:
            query = query.where(ExerciseVersion.slug == slug)
        rows = list(session.scalars(query))
        for row in rows:
            row.exercise_version  # noqa: B018
        return rows


def snapshot(web: Web, row: Submission) -> dict[str, Any]:
    """Where a submission stands now, as the first event of its stream and the API's answer."""
    info: dict[str, Any] = {
        "submission": row.id,
        "kind": "state",
        "state": row.state,
        "status": row.status,
        "attempt": row.attempt,
    }
    if row.state == "queued" and row.job_id:
        with contextlib.suppress(ServiceError, RedisError, jobqueue.QueueError):
            info["position"] = jobqueue.position(web.redis(), row.queue, row.job_id)
    if row.state == "system_error":
        info["message"] = "the grader failed on our side; it has been recorded"
    return info


def unlocked_by(web: Web, user: User, row: Submission) -> list[ConceptCard]:
    """The concepts this pass opened (for the banner): those that need `row`'s concept and are
    open now, provided this was the learner's first pass of it."""
    if row.status != "passed" or row.kind != "submit" or row.user_id != user.id:
        return []
    slug = row.exercise_version.slug
    with web.factory() as session:
        earlier = session.scalar(
            select(func.count())
            .select_from(Submission)
            .join(ExerciseVersion)
            .where(
                Submission.user_id == user.id,
                ExerciseVersion.slug == slug,
                Submission.kind == "submit",
                Submission.status == "passed",
                Submission.id < row.id,
            )
        )
    if earlier:
        return []
    catalog = web.catalog()
    passed = passed_slugs(web.factory, user.id) - {slug}
    opened = newly_unlocked(catalog, slug, passed=passed, plan=plan_of(user))
    return [
        card(catalog.exercises[s], passed=passed | {slug}, plan=plan_of(user), order=catalog.order)
        for s in opened
    ]


# --- instructors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortCell:
    passed: bool
    attempts: int
    last_status: str | None


@dataclass(frozen=True)
class ConceptStats:
    slug: str
    title: str
    learners: int  # who tried it
    passed: int
    pass_rate: float | None
    median_attempts: float | None  # submissions up to the first pass, over those who passed


@dataclass(frozen=True)
class Cohort:
    students: list[User]
    concepts: list[tuple[str, str]]  # (slug, title)
    cells: dict[tuple[int, str], CohortCell]
    stats: list[ConceptStats]


def cohort(web: Web) -> Cohort:
    catalog = web.catalog()
    with web.factory() as session:
        students = list(session.scalars(select(User).where(User.role == Role.STUDENT).order_by(User.name)))
        rows = session.execute(
            select(Submission.user_id, ExerciseVersion.slug, Submission.status, Submission.id)
            .join(ExerciseVersion)
            .where(Submission.kind == "submit", Submission.user_id.is_not(None))
            .order_by(Submission.id)
        ).all()
    per: dict[tuple[int, str], list[str | None]] = defaultdict(list)
    for user_id, slug, status, _ in rows:
        per[(user_id or 0, slug)].append(status)
    cells = {
        key: CohortCell(passed="passed" in statuses, attempts=len(statuses), last_status=statuses[-1])
        for key, statuses in per.items()
    }
    student_ids = {s.id for s in students}
    stats = []
    for exercise in catalog:
        slug = exercise.slug
        tried = [statuses for (uid, s), statuses in per.items() if s == slug and uid in student_ids]
        firsts = [statuses.index("passed") + 1 for statuses in tried if "passed" in statuses]
        stats.append(
            ConceptStats(
                slug=slug,
                title=exercise.spec.title,
                learners=len(tried),
                passed=len(firsts),
                pass_rate=len(firsts) / len(tried) if tried else None,
                median_attempts=statistics.median(firsts) if firsts else None,
            )
        )
    return Cohort(
        students=students,
        concepts=[(e.slug, e.spec.title) for e in catalog],
        cells=cells,
        stats=stats,
    )


@dataclass(frozen=True)
class SubmissionFilter:
    user: str | None = None  # name or email, a substring
    exercise: str | None = None
    status: str | None = None  # a verdict status, or a state (queued, running, system_error)
    kind: str | None = None
    limit: int = 100
    offset: int = 0


def browse(web: Web, where: SubmissionFilter) -> tuple[list[Submission], int]:
    query = select(Submission).join(ExerciseVersion).outerjoin(User, Submission.user_id == User.id)
    if where.user:
        pattern = f"%{where.user.lower()}%"
        query = query.where(func.lower(User.name).like(pattern) | func.lower(User.email).like(pattern))
    if where.exercise:
        query = query.where(ExerciseVersion.slug == where.exercise)
    if where.status:
        query = query.where((Submission.status == where.status) | (Submission.state == where.status))
    if where.kind:
        query = query.where(Submission.kind == where.kind)
    with web.factory() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(
            session.scalars(
                query.order_by(Submission.id.desc())
                .limit(min(max(where.limit, 1), 500))
                .offset(max(where.offset, 0))
            )
        )
        for row in rows:
            row.exercise_version  # noqa: B018
            row.user  # noqa: B018
    return rows, total


def regrade(web: Web, submission_ids: list[int], *, live_version: bool = True) -> int:
    """Queue finished submissions again; with `live_version`, against the exercise's current
    version. Returns how many were queued."""
    redis = web.redis()
    versions = {e.slug: e for e in web.catalog()} if live_version else None
    queued = submissions.regrade(web.factory, submission_ids, versions)
    for item in queued:
        with contextlib.suppress(RedisError):
            jobqueue.enqueue(redis, item.queue, item.submission_id, item.attempt, item.job_id)
    return len(queued)


def queue_overview(web: Web) -> dict[str, Any]:
    from rq import Worker
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    redis = web.redis()
    queues = []
    for name in jobqueue.QUEUES:
        q = jobqueue.queue(redis, name)
        queues.append(
            {
                "name": name,
                "waiting": len(q),
                "running": len(StartedJobRegistry(queue=q)),
                "failed": len(FailedJobRegistry(queue=q)),
            }
        )
    workers = [
        {
            "name": w.name,
            "state": str(w.get_state()),
            "queues": [q.name for q in w.queues],
            "current_job": w.get_current_job_id(),
            "successful": w.successful_job_count,
            "failed": w.failed_job_count,
        }
        for w in Worker.all(connection=redis)
    ]
    with web.factory() as session:
        states = dict(
            (state, count)
            for state, count in session.execute(
                select(Submission.state, func.count()).group_by(Submission.state)
            ).all()
        )
        failures = list(
            session.scalars(
                select(Submission)
                .where(Submission.state == "system_error")
                .order_by(Submission.finished_at.desc(), Submission.id.desc())
                .limit(20)
            )
        )
        for row in failures:
            row.exercise_version  # noqa: B018
        day_ago = utcnow() - datetime.timedelta(days=1)
        recent = session.execute(
            select(Submission.queued_s, Submission.grading_s).where(
                Submission.finished_at > day_ago, Submission.state == "done"
            )
        ).all()
    waits = [r[0] for r in recent if r[0] is not None]
    gradings = [r[1] for r in recent if r[1] is not None]
    return {
        "queues": queues,
        "workers": workers,
        "states": states,
        "failures": failures,
        "median_wait_s": statistics.median(waits) if waits else None,
        "median_grading_s": statistics.median(gradings) if gradings else None,
    }


@dataclass(frozen=True)
class ExerciseRow:
    slug: str
    title: str
    version: str
    origin: str  # "bundled" | "upload"
    validation: ExercisePackage | None  # the latest validation of the live version
    pending: list[ExercisePackage]  # uploads not published yet


def exercise_rows(web: Web) -> tuple[list[ExerciseRow], dict[str, list[str]]]:
    catalog = web.catalog()
    with web.factory() as session:
        all_packages = list(session.scalars(select(ExercisePackage).order_by(ExercisePackage.id.desc())))
    rows = []
    for exercise in catalog:
        mine = [p for p in all_packages if p.slug == exercise.slug]
        validation = next((p for p in mine if p.version == exercise.version), None)
        pending = [p for p in mine if p.state != PackageState.PUBLISHED and p.version != exercise.version]
        origin = "bundled" if exercise.directory.is_relative_to(web.settings.exercises_dir) else "upload"
        rows.append(
            ExerciseRow(exercise.slug, exercise.spec.title, exercise.version, origin, validation, pending)
        )
    known = set(catalog.exercises)
    new = [p for p in all_packages if p.slug not in known]
    for package in new:
        if not any(r.slug == package.slug for r in rows):
            rows.append(
                ExerciseRow(
                    package.slug,
                    package.title,
                    "",
                    "upload",
                    None,
                    [p for p in new if p.slug == package.slug],
                )
            )
    return rows, catalog.broken


def packages_of(web: Web, slug: str) -> list[ExercisePackage]:
    with web.factory() as session:
        return list(
            session.scalars(
                select(ExercisePackage)
                .where(ExercisePackage.slug == slug)
                .order_by(ExercisePackage.id.desc())
            )
        )


def versions_of(web: Web, slug: str) -> list[tuple[ExerciseVersion, int]]:
    """Every version students submitted to, with how many submissions each got."""
    with web.factory() as session:
        return [
            (version, count)
            for version, count in session.execute(
                select(ExerciseVersion, func.count(Submission.id))
                .outerjoin(Submission, Submission.exercise_version_id == ExerciseVersion.id)
                .where(ExerciseVersion.slug == slug)
                .group_by(ExerciseVersion.id)
                .order_by(ExerciseVersion.created_at.desc())
            ).all()
        ]


def get_package(web: Web, package_id: int) -> ExercisePackage:
    with web.factory() as session:
        row = session.get(ExercisePackage, package_id)
        if row is None:
            raise NotFound(f"package {package_id}")
        return row


def upload(web: Web, user: User, data: bytes) -> ExercisePackage:
    """Store an uploaded zip as a new exercise version and queue its validation."""
    import shutil
    import tempfile

    from web.uploads import UploadError, UploadLimits, extract_package

    catalog = web.catalog()
    staging_parent = web.settings.data_dir / "library" / ".staging"
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_parent)) / "package"
    try:
        try:
            package = extract_package(
                data,
                staging,
                limits=UploadLimits(),
                tracks=[t.id for t in catalog.tracks],
                known=set(catalog.exercises),
            )
        except UploadError as exc:
            raise ServiceError(422, "The upload was refused: " + " ".join(exc.problems)) from None
        final = package_root(web.settings.data_dir, package.slug, package.version)
        with web.factory() as session:
            existing = session.scalar(
                select(ExercisePackage).where(
                    ExercisePackage.slug == package.slug, ExercisePackage.version == package.version
                )
            )
        if existing is not None:
            raise ServiceError(
                409, f"this exact version of {package.slug} was uploaded already (package {existing.id})"
            )
        bundled = catalog.exercises.get(package.slug)
        if bundled is not None and bundled.version == package.version:
            raise ServiceError(409, f"this is the version of {package.slug} students already see")
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    redis = web.redis()
    try:
        with transaction(web.factory) as session:
            row = ExercisePackage(
                slug=package.slug,
                version=package.version,
                title=package.exercise.spec.title,
                origin="upload",
                path=str(final.relative_to(web.settings.data_dir)),
                uploaded_by=user.id,
                state=PackageState.QUEUED,
            )
            session.add(row)
            session.flush()
            row.job_id = jobpackages.new_job_id(row.id)
    except IntegrityError:  # the same zip, uploaded twice at once
        raise ServiceError(409, f"this exact version of {package.slug} was uploaded already") from None
    jobqueue.enqueue_validation(redis, row.id, row.job_id)
    return row


def validate_live(web: Web, slug: str) -> ExercisePackage:
    """Queue a validation of the version students see now (a bundled exercise, say)."""
    exercise = web.exercise(slug)
    redis = web.redis()
    with transaction(web.factory) as session:
        row = session.scalar(
            select(ExercisePackage).where(
                ExercisePackage.slug == slug, ExercisePackage.version == exercise.version
            )
        )
        if row is None:
            row = ExercisePackage(
                slug=slug,
                version=exercise.version,
                title=exercise.spec.title,
                origin="bundled",
                path=None,
                state=PackageState.QUEUED,
            )
            session.add(row)
            session.flush()
            row.job_id = jobpackages.new_job_id(row.id)
            job_id = row.job_id
        else:
            job_id = None
    if job_id is None:
        job_id = jobpackages.requeue(web.factory, row.id)
        if job_id is None:
            return get_package(web, row.id)
    jobqueue.enqueue_validation(redis, row.id, job_id)
    return get_package(web, row.id)


def publish(web: Web, package_id: int) -> ExercisePackage:
    """Make a validated upload the version students see."""
    with transaction(web.factory) as session:
        row = session.get(ExercisePackage, package_id)
        if row is None:
            raise NotFound(f"package {package_id}")
        if row.state == PackageState.PUBLISHED:  # published before: make it the live one again
            row.published_at = utcnow()
            return row
        if row.state != PackageState.VALID:
            raise ServiceError(409, f"only a validated package can be published; this one is {row.state}")
        if row.origin != "upload":
            raise ServiceError(409, "this version is the bundled one; it is live already")
        row.state = PackageState.PUBLISHED
        row.published_at = utcnow()
    catalog = web.catalog()
    if row.slug not in catalog.exercises:  # it failed to join the catalog
        problems = catalog.broken.get(row.slug, ["unknown problem"])
        with transaction(web.factory) as session:
            stored = session.get(ExercisePackage, package_id)
            assert stored is not None
            stored.state = PackageState.VALID
            stored.published_at = None
        raise ServiceError(409, "publishing would break the catalog: " + " ".join(problems))
    return row


def status_counts(rows: list[Submission]) -> Counter[str]:
    return Counter(r.status or r.state for r in rows)
