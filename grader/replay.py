"""A verdict's receipt, replayed: grade the stored submission again against the exact exercise
version and seed its provenance records, and say whether the outcome is the same and where this
host differs from the one that gave it.

The receipt is the verdict's provenance: the exercise version (a content hash, fetched from the
database's archive on any host), the submission's SHA-256 (checked against the stored source),
the seed of the hidden inputs, and the grading host's fingerprint. Test outcomes and the status
are compared; speed figures are measured again, so only their pass or fail is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from grader import fingerprint
from grader.catalog import CatalogError
from grader.engine import grade
from grader.library import Library
from grader.store import Submission
from grader.verdict import Verdict
from sandbox import Sandbox

# provenance fields that describe the host (compared, reported; never a reason to refuse): the
# fingerprint's, which the queue page compares between workers, and the host's name
HOST_FIELDS = ("host", *fingerprint.COMPARED)


class ReplayError(Exception):
    """The receipt cannot be replayed here; the message says why."""


@dataclass
class Replay:
    submission_id: int
    recorded: Verdict
    replayed: Verdict
    changed_tests: list[str] = field(default_factory=list)  # "name: recorded -> replayed"
    changed_checks: list[str] = field(default_factory=list)
    host_differences: list[str] = field(default_factory=list)  # "field: recorded -> here"

    @property
    def agrees(self) -> bool:
        return (
            self.recorded.status == self.replayed.status
            and not self.changed_tests
            and not self.changed_checks
        )


def replay(
    factory: sessionmaker[Session],
    library: Library,
    backend: Sandbox,
    submission_id: int,
    *,
    device: str = "cpu",
) -> Replay:
    with factory() as session:
        row = session.get(Submission, submission_id)
        if row is None:
            raise ReplayError(f"no submission {submission_id}")
        if row.verdict is None:
            raise ReplayError(f"submission {submission_id} has no verdict yet ({row.state})")
        recorded = Verdict.model_validate(row.verdict)
        source, filename, kind = row.source, row.filename, row.kind
        slug, version = row.exercise_version.slug, row.exercise_version.version
    provenance = recorded.provenance
    if hashlib.sha256(source).hexdigest() != provenance.submission_sha256:
        raise ReplayError(f"submission {submission_id}'s stored source is not the one its verdict names")
    if provenance.exercise_version != version:
        raise ReplayError(f"its verdict was given on version {provenance.exercise_version}, not {version}")
    try:
        exercise = library.exercise_at(factory, slug, version)
    except (CatalogError, KeyError) as exc:
        raise ReplayError(f"exercise {slug} cannot be loaded here: {exc}") from None
    if exercise.version != version:
        raise ReplayError(f"version {version} of {slug} is in neither this host's library nor the database")
    public_only = kind == "public"
    replayed = grade(
        exercise,
        source,
        backend,
        public_only=public_only,
        measure=not public_only,
        seed=provenance.seed,
        device=device,
        filename=filename,
    )
    result = Replay(submission_id, recorded, replayed)
    before = {t.name: t.outcome for t in recorded.tests}
    after = {t.name: t.outcome for t in replayed.tests}
    for name in sorted(before.keys() | after.keys()):
        if before.get(name) != after.get(name):
            result.changed_tests.append(
                f"{name}: {before.get(name, 'absent')} -> {after.get(name, 'absent')}"
            )
    checks_before = {p.name: p.passed for p in recorded.performance}
    checks_after = {p.name: p.passed for p in replayed.performance}
    for name in sorted(checks_before.keys() | checks_after.keys()):
        if checks_before.get(name) != checks_after.get(name):
            result.changed_checks.append(
                f"{name}: {_held(checks_before.get(name))} -> {_held(checks_after.get(name))}"
            )
    here = fingerprint.of_host(backend.name, backend.image, backend.image_digest, device)
    now = {**here.model_dump(), "torch": replayed.provenance.torch}
    for name in HOST_FIELDS:
        was = getattr(provenance, name, None)
        if was and was != now.get(name):
            result.host_differences.append(f"{name}: {was} -> {now.get(name) or 'none'}")
    return result


def _held(passed: bool | None) -> str:
    return "absent" if passed is None else ("held" if passed else "failed")
