"""What a learner is told about a failed test, by visibility.

Every explanation is made of two texts. `message` is the same whatever the submission did on the
test's inputs: the test's own words (the messages of `assert_close` and `expect`, `pytest.fail`
texts, hints), our fixed vocabulary ("your code raised IndexError"), facts the harness owns (the
name a test asked for, a limit) and a location the harness vouches for from its own parse of the
submitted source (`grader.harness.location`). `full` adds what the submission controls: its
exception's class name and text, shapes, counts, indices, values. A hidden test shows `message`;
a public test (its inputs are public) or a hidden one marked `@pytest.mark.feedback("full")`
shows `full`. The choice is made in one place, `Feedback.shown`, for every path that reports.
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass

import pytest

from grader.harness.location import Locator
from grader.measurement.protocol import PerformanceInconclusive
from grader.remote import Lookup, MissingName, RemoteError, RunnerDied
from grader.testing.asserts import GradingFailure
from grader.verdict import Outcome, PerfResult, Status, describe_performance, truncate


class TooSlow(Exception):
    """Correct outputs, but a performance threshold was missed."""

    def __init__(self, result: PerfResult, hint: str = "") -> None:
        super().__init__(describe_performance(result))
        self.result = result
        self.hint = hint


class SubmissionImportError(Exception):
    """The submission's module could not be imported; every test reports this. Importing runs
    before any test input exists, so what it raised carries nothing hidden."""

    def __init__(self, error: RemoteError, where: str) -> None:
        super().__init__(f"{error.type_name}: {error.remote_message}{where}")
        self.error = error


@dataclass(frozen=True)
class Feedback:
    outcome: Outcome
    message: str  # the same whatever the submission did on the test's inputs: shown for every test
    hint: str = ""
    system_error: str = ""  # set when the failure is ours, not the submission's
    status: Status | None = None  # a verdict status this failure implies (a resource ran out)
    full: str = ""  # `message` with what the submission controls: only where the inputs are public

    def shown(self, reveal: bool) -> str:
        """The one place that decides what a learner reads of a test's failure."""
        return truncate(self.full if reveal and self.full else self.message)


# The submission ran out of a sandbox resource: a limit, not a bug in its logic.
RESOURCE_ERRNOS = {
    errno.ENOSPC: "the sandbox's disk is full",
    errno.EDQUOT: "the sandbox's disk is full",
    errno.EFBIG: "a file grew past the sandbox's disk limit",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files",
    errno.EAGAIN: "too many processes or threads",
}
OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory")


def explain(exc: BaseException, *, locator: Locator, hidden: bool, doc: str = "") -> Feedback:
    """Turn what a test raised into an outcome and the words a learner may see. `hidden` only
    limits which location the harness vouches for (one per grading across hidden tests)."""
    if isinstance(exc, TooSlow):
        return Feedback(Outcome.TOO_SLOW, str(exc), exc.hint)
    if isinstance(exc, GradingFailure):
        full = exc.message + (f" ({exc.detail})" if exc.detail else "")
        return Feedback(Outcome.FAILED, exc.message, exc.hint, full=full)
    if isinstance(exc, RunnerDied):
        return Feedback(Outcome.ERROR, exc.death.message, full=exc.death.full)
    if isinstance(exc, SubmissionImportError):
        return Feedback(Outcome.ERROR, f"your module failed to import: {exc}")
    if isinstance(exc, MissingName):
        return Feedback(Outcome.FAILED, f"{exc}: define it with the signature from the skeleton")
    if isinstance(exc, RemoteError):
        where = locator.where_hidden(exc) if hidden else locator.where(exc)
        return _remote(exc, where)
    if isinstance(exc, PerformanceInconclusive):
        return Feedback(Outcome.ERROR, str(exc), system_error=str(exc))
    if isinstance(exc, pytest.fail.Exception):
        return Feedback(Outcome.FAILED, str(exc))
    if isinstance(exc, AssertionError):
        said = "a hidden check failed" + (f": {doc}" if doc else "")
        return Feedback(Outcome.FAILED, said, full=_first_lines(str(exc)) or "an assertion failed")
    return Feedback(
        Outcome.ERROR,
        f"the test could not check your result ({type(exc).__name__})",
        full=f"the test could not check your result ({type(exc).__name__}: {exc})",
    )


def _remote(exc: RemoteError, where: str) -> Feedback:
    feedback = _remote_feedback(exc, where)
    case = getattr(exc, "shrunk_case", None)  # set by the harness when a test shrank the failing case
    if isinstance(case, str):
        return dataclasses.replace(
            feedback,
            message=f"{case}: {feedback.message}",
            full=f"{case}: {feedback.full or feedback.message}",
        )
    return feedback


def _remote_feedback(exc: RemoteError, where: str) -> Feedback:
    if isinstance(exc.lookup, Lookup):
        return _lookup(exc.lookup)
    if exc.type_name == "ForbiddenError":
        said = f"your code called a function this exercise forbids{where}"
        return Feedback(Outcome.FAILED, said, full=f"{said}: {exc.remote_message}")
    if exc.type_name == "NotImplementedError":
        return Feedback(
            Outcome.FAILED,
            f"NotImplementedError{where}",
            "this function still holds the skeleton's placeholder: replace the `raise` with your code",
        )
    message = exc.remote_message.lower()
    if exc.type_name == "MemoryError" or (
        exc.type_name == "RuntimeError" and any(m in message for m in OUT_OF_MEMORY)
    ):
        return Feedback(
            Outcome.ERROR, f"memory limit: your code ran out of memory{where}", status=Status.MEMORY_LIMIT
        )
    code = exc.info.errno
    if code is not None and code in RESOURCE_ERRNOS and "OSError" in exc.info.bases:
        return Feedback(Outcome.ERROR, f"{RESOURCE_ERRNOS[code]}{where}", status=Status.RUNTIME_ERROR)
    if exc.type_name == "RuntimeError" and "can't start new thread" in message:
        return Feedback(Outcome.ERROR, f"too many processes or threads{where}", status=Status.RUNTIME_ERROR)
    # only builtin exception types are named where the inputs are hidden: the submission chooses
    # its own class names and messages, and could make them carry the inputs
    said = f"your code raised {exc.builtin_type}"
    full = f"your code raised {exc.type_name}" + (f": {exc.remote_message}" if exc.remote_message else "")
    return Feedback(Outcome.ERROR, said + where, full=full + where)


def _lookup(lookup: Lookup) -> Feedback:
    """A name the test asked for was not there, or a step of the protocol found nothing to do:
    said in the harness's own words, with the name the harness asked for."""
    return Feedback(Outcome.FAILED, lookup.explain(), lookup.hint)


def _first_lines(text: str, count: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[:count])
