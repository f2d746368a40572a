"""The cohort: every student against every concept, each concept's pass rate, what the students
get wrong in an exercise (the hints that fire, the known-wrong variants they resemble), and the
courses on learning platforms: their members, and the grades that did not reach them."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from sqlalchemy import select

from grader.catalog import Exercise
from grader.events import SubmissionState
from grader.lti import outbox
from grader.lti.keys import KeyStore, KeyStoreError
from grader.lti.services import ServiceError, Services
from grader.store import (
    ExercisePackage,
    ExerciseVersion,
    LtiContext,
    LtiPlatform,
    LtiScorePush,
    LtiUser,
    PackageState,
    PushState,
    Role,
    Submission,
    User,
)
from grader.verdict import Status, function_of
from web.services.base import Web
from web.services.errors import Unavailable


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


# --- what the cohort gets wrong, per exercise --------------------------------------------------
#
# Read from the verdicts of the students' graded submissions (`kind` submit; public runs skip the
# hidden tests, instructors' own tries are left out). A hint *fires* on a failing test result
# (failed, error or too slow) that carries it. A student *gets past* a hint at their first later
# submission that passed, or in which the hint fired nowhere while every test that carried it in
# the first submission showing it was judged again (passed, or failed a check with another hint or
# none; a test that errored, say on a module that failed to import, or was skipped tells nothing).
# The attempts it took count the submissions after that first one, up to and including the one
# that got past (1: the next submission did).
#
# A submission *behaves like* a known-wrong variant when both fail the same set of test functions
# (names with their parameter ids stripped: `test_mask[4-8]` is `test_mask`), which is how a
# variant's `caught-by` names its tests; the variants are the live version's, whatever version a
# submission was made for, and a variant's set is the one the live version's validation recorded.
# A variant that fails no test (rejected, or a crash on import) is compared with nothing, and a
# submission may behave like several variants when they fail the same tests.


@dataclass(frozen=True)
class Graded:
    """One graded submission, as the aggregation reads it."""

    user_id: int
    submission_id: int
    status: str
    tests: Sequence[Mapping[str, Any]]  # the verdict's test results, as stored


@dataclass(frozen=True)
class Signature:
    """A known-wrong variant and the test functions it fails in validation."""

    name: str  # the file's name in wrong/, without .py
    why: str
    expect: str
    failing: frozenset[str]


@dataclass(frozen=True)
class HintStats:
    hint: str
    tests: tuple[str, ...]  # the test functions that carried it
    visibility: tuple[str, ...]  # of those tests: "hidden", "public" or both
    results: int  # failing test results carrying it
    submissions: int  # submissions it fired in
    students: int
    cleared: int  # students who got past it
    stuck: int  # students who have not (yet)
    median_attempts: float | None  # attempts to get past it, over those who did
    max_attempts: int | None


@dataclass(frozen=True)
class VariantStats:
    name: str
    why: str
    expect: str
    tests: tuple[str, ...]  # the test functions it fails; empty: compared with nothing
    submissions: int
    students: int


@dataclass(frozen=True)
class Mistakes:
    submissions: int  # graded submissions looked at
    students: int
    failing: int  # submissions with at least one failing test
    hints: list[HintStats]  # the most students first
    variants: list[VariantStats] | None  # None: the variants' failing tests are not known
    matched: int  # failing submissions that behaved like at least one variant


JUDGED = ("passed", "failed", "too_slow")  # outcomes of a test whose checks ran


def _failing(test: Mapping[str, Any]) -> bool:
    return test.get("outcome") not in ("passed", "skipped")


@dataclass
class _Hint:
    tests: set[str] = field(default_factory=set)
    visibility: set[str] = field(default_factory=set)
    results: int = 0
    submissions: int = 0
    students: set[int] = field(default_factory=set)
    attempts: list[int] = field(default_factory=list)
    stuck: int = 0


@dataclass(frozen=True)
class _Seen:
    """What one submission showed: the hints that fired (with the tests carrying each), the
    tests whose checks were judged (passed, failed or too slow), whether it passed."""

    fired: dict[str, set[str]]
    judged: set[str]
    passed: bool


def mistakes_of(graded: Iterable[Graded], signatures: Sequence[Signature] | None) -> Mistakes:
    """Which hints fired how often, on how many students and how many attempts it took them to
    get past each; and which known-wrong variants the submissions behaved like. Pure: the caller
    reads the verdicts (in any order) and the variants' signatures (None when not known)."""
    per_student: dict[int, list[Graded]] = defaultdict(list)
    for row in graded:
        per_student[row.user_id].append(row)
    hints: dict[str, _Hint] = defaultdict(_Hint)
    variant_hits: dict[str, list[int]] = defaultdict(list)  # name -> user ids, one per submission
    total = failing = matched = 0
    for user_id, rows in per_student.items():
        rows.sort(key=lambda r: r.submission_id)
        seen: list[_Seen] = []
        first: dict[str, int] = {}  # hint -> index of the first submission showing it
        for row in rows:
            total += 1
            fired: dict[str, set[str]] = defaultdict(set)
            failed: set[str] = set()
            for test in row.tests:
                name = str(test.get("name", ""))
                if not _failing(test):
                    continue
                failed.add(function_of(name))
                hint = str(test.get("hint") or "").strip()
                if hint:
                    fired[hint].add(name)
                    stats = hints[hint]
                    stats.results += 1
                    stats.tests.add(function_of(name))
                    stats.visibility.add(str(test.get("visibility", "hidden")))
            for hint in fired:
                hints[hint].submissions += 1
                hints[hint].students.add(user_id)
                first.setdefault(hint, len(seen))
            judged = {str(t.get("name", "")) for t in row.tests if t.get("outcome") in JUDGED}
            seen.append(_Seen(dict(fired), judged, row.status == "passed"))
            if failed:
                failing += 1
                alike = [s.name for s in signatures or () if s.failing and s.failing == failed]
                for name in alike:
                    variant_hits[name].append(user_id)
                matched += bool(alike)
        for hint, start in first.items():
            carriers = seen[start].fired[hint]
            later = (
                i
                for i in range(start + 1, len(seen))
                if seen[i].passed or (hint not in seen[i].fired and carriers <= seen[i].judged)
            )
            past = next(later, None)
            if past is None:
                hints[hint].stuck += 1
            else:
                hints[hint].attempts.append(past - start)
    hint_rows = [
        HintStats(
            hint=hint,
            tests=tuple(sorted(h.tests)),
            visibility=tuple(sorted(h.visibility)),
            results=h.results,
            submissions=h.submissions,
            students=len(h.students),
            cleared=len(h.attempts),
            stuck=h.stuck,
            median_attempts=statistics.median(h.attempts) if h.attempts else None,
            max_attempts=max(h.attempts) if h.attempts else None,
        )
        for hint, h in hints.items()
    ]
    hint_rows.sort(key=lambda h: (-h.students, -h.results, h.hint))
    variants = None
    if signatures is not None:
        variants = [
            VariantStats(
                name=s.name,
                why=s.why,
                expect=s.expect,
                tests=tuple(sorted(s.failing)),
                submissions=len(variant_hits[s.name]),
                students=len(set(variant_hits[s.name])),
            )
            for s in signatures
        ]
        variants.sort(key=lambda v: (-v.submissions, v.name))
    return Mistakes(
        submissions=total,
        students=len(per_student),
        failing=failing,
        hints=hint_rows,
        variants=variants,
        matched=matched,
    )


@dataclass(frozen=True)
class ExerciseMistakes:
    slug: str
    version: str  # the live version, whose variants the submissions are compared with
    mistakes: Mistakes
    validation: ExercisePackage | None  # the live version's validation, if any
    variants_note: str  # why the variants are not compared, when they are not


def signatures_from(exercise: Exercise, report: Mapping[str, Any] | None) -> list[Signature] | None:
    """The known-wrong variants of `exercise` with the test functions each failed in its
    validation `report`; None when the report does not say for every variant."""
    if not exercise.wrong:
        return []
    failing: dict[str, frozenset[str]] = {}
    for check in (report or {}).get("checks") or []:
        subject = str(check.get("subject", ""))
        if subject.startswith("wrong/") and isinstance(check.get("failing"), list):
            names = check["failing"]
            failing[subject.removeprefix("wrong/")] = frozenset(function_of(str(n)) for n in names)
    if any(w.name not in failing for w in exercise.wrong):
        return None
    return [Signature(w.name, w.why, w.expect.value, failing[w.name]) for w in exercise.wrong]


def exercise_mistakes(web: Web, slug: str) -> ExerciseMistakes:
    """What the students get wrong in one exercise: one query over its graded submissions'
    test results, and the live version's validation report for its known-wrong variants."""
    exercise = web.exercise(slug)
    with web.factory() as session:
        rows = session.execute(
            select(Submission.user_id, Submission.id, Submission.status, Submission.verdict["tests"])
            .join(ExerciseVersion, Submission.exercise_version_id == ExerciseVersion.id)
            .join(User, Submission.user_id == User.id)
            .where(
                ExerciseVersion.slug == slug,
                Submission.kind == "submit",
                Submission.state == SubmissionState.DONE,
                Submission.status.is_not(None),
                Submission.status != Status.SYSTEM_ERROR.value,
                User.role == Role.STUDENT,
            )
            .order_by(Submission.user_id, Submission.id)
        ).all()
        validation = session.scalar(
            select(ExercisePackage).where(
                ExercisePackage.slug == slug, ExercisePackage.version == exercise.version
            )
        )
    graded = [
        Graded(user_id, submission_id, status or "", [t for t in tests if isinstance(t, dict)])
        for user_id, submission_id, status, tests in rows
        if user_id is not None and isinstance(tests, list)
    ]
    signatures = signatures_from(exercise, validation.report if validation is not None else None)
    note = ""
    if signatures is None:
        if validation is None:
            note = "Not available until the live version is validated."
        elif validation.state in (PackageState.QUEUED, PackageState.VALIDATING):
            note = "Available once the validation of the live version under way has run."
        elif validation.state == PackageState.ERROR:
            note = "The last validation of the live version could not run: validate it again."
        else:
            note = (
                "The live version's validation report does not say which tests each variant fails: "
                "validate it again."
            )
    return ExerciseMistakes(slug, exercise.version, mistakes_of(graded, signatures), validation, note)


# --- the courses on learning platforms (LTI): rosters and grades that did not reach them -------
#
# A course's members come from the platform's Names and Role Provisioning service, fetched when an
# instructor asks (it is a call to another site, made in the request's threadpool); each member
# is matched to the person here by (issuer, sub), the pair their launches signed in with.


@dataclass(frozen=True)
class RosterMember:
    name: str
    email: str | None
    roles: list[str]  # without their vocabulary prefix: Learner, Instructor, ...
    status: str  # Active, Inactive, Deleted (the platform's)
    user_id: int | None  # who they are here; None until their first launch
    passed: int  # concepts passed here
    tried: int  # concepts with a graded submission here


@dataclass(frozen=True)
class CourseRoster:
    context_pk: int
    platform: str
    title: str
    context_id: str
    can_fetch: bool  # the platform announced a memberships URL
    members: list[RosterMember] | None  # None: not fetched (or it failed)
    error: str | None


@dataclass(frozen=True)
class LtiCohort:
    courses: list[CourseRoster]
    pushes: list[outbox.PushView]  # grades that failed, or are being tried again
    concepts: int  # concepts in the catalog, for "passed n of m"


def lti_cohort(web: Web, fetch: int | None = None) -> LtiCohort:
    """The courses of the platforms registered here, with the members of course `fetch` (an
    LtiContext id) fetched from its platform, and the grades that did not reach a platform."""
    with web.factory() as session:
        rows = session.execute(
            select(LtiContext, LtiPlatform)
            .join(LtiPlatform, LtiContext.platform_id == LtiPlatform.id)
            .order_by(LtiPlatform.name, LtiContext.title, LtiContext.id)
        ).all()
        session.expunge_all()  # used after the session closes (a fetch may take a while)
    courses = []
    for context, platform in rows:
        members, error = None, None
        if fetch == context.id:
            if not context.memberships_url:
                error = "This course's launches did not offer Names and Role Provisioning."
            elif not platform.enabled:
                error = f"{platform.name} is disabled here."
            else:
                members, error = _roster(web, platform, context.memberships_url)
        courses.append(
            CourseRoster(
                context_pk=context.id,
                platform=platform.name,
                title=context.title or context.context_id,
                context_id=context.context_id,
                can_fetch=bool(context.memberships_url),
                members=members,
                error=error,
            )
        )
    return LtiCohort(courses=courses, pushes=outbox.troubled(web.factory), concepts=len(list(web.catalog())))


def _roster(web: Web, platform: LtiPlatform, url: str) -> tuple[list[RosterMember] | None, str | None]:
    try:
        redis: Redis | None = web.redis()
    except Unavailable:
        redis = None  # no token cache: every fetch asks for a token
    services = Services(KeyStore(web.settings.data_dir), redis)
    try:
        found = services.members(platform, url)
    except ServiceError as exc:
        return None, f"{platform.name} did not give the course's members: {exc.message}"
    except KeyStoreError as exc:
        return None, f"The tool's LTI key cannot be used: {exc}"
    subs = [m.user_id for m in found]
    with web.factory() as session:
        here = dict(
            session.execute(
                select(LtiUser.sub, LtiUser.user_id).where(
                    LtiUser.issuer == platform.issuer, LtiUser.sub.in_(subs)
                )
            ).all()
        )
        progress = session.execute(
            select(Submission.user_id, ExerciseVersion.slug, Submission.status)
            .join(ExerciseVersion)
            .where(Submission.kind == "submit", Submission.user_id.in_(set(here.values())))
        ).all()
    passed: dict[int, set[str]] = defaultdict(set)
    tried: dict[int, set[str]] = defaultdict(set)
    for user_id, slug, status in progress:
        if user_id is None or status is None or status == Status.SYSTEM_ERROR.value:
            continue
        tried[user_id].add(slug)
        if status == Status.PASSED.value:
            passed[user_id].add(slug)
    members = []
    for m in found:
        user_id = here.get(m.user_id)
        members.append(
            RosterMember(
                name=m.name or m.email or m.user_id,
                email=m.email,
                roles=m.role_names,
                status=m.status,
                user_id=user_id,
                passed=len(passed.get(user_id or 0, ())),
                tried=len(tried.get(user_id or 0, ())),
            )
        )
    return members, None


def retry_pushes(web: Web, push_ids: list[int] | None = None) -> int:
    """Send failed grades again (`push_ids`, or every failed one); returns how many."""
    if push_ids is None:
        with web.factory() as session:
            push_ids = list(
                session.scalars(select(LtiScorePush.id).where(LtiScorePush.state == PushState.FAILED))
            )
    again = outbox.retry(web.factory, push_ids)
    if again:
        try:
            outbox.enqueue(web.redis(), again)
        except Unavailable:
            pass  # pending in the database: the workers' reconciler enqueues them
    return len(again)
