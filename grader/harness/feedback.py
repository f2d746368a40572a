"""What a learner is told about a failed test, by visibility.

Public tests show everything. Hidden tests show what their author wrote for the learner (the
messages of `assert_close` and `expect`, `pytest.fail` texts, hints), the type and place of an
exception the submission raised, but never values computed from hidden inputs: not the detail of
a comparison, not the message of the submission's own exception (which could carry the inputs),
unless the test is marked `@pytest.mark.feedback("full")`.
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass

import pytest

from grader.measurement.protocol import PerformanceInconclusive
from grader.remote import MissingName, RemoteError, RunnerDied
from grader.testing.asserts import GradingFailure
from grader.verdict import Outcome, PerfResult, Status, truncate


class TooSlow(Exception):
    """Correct outputs, but a performance threshold was missed."""

    def __init__(self, result: PerfResult, hint: str = "") -> None:
        super().__init__(describe_performance(result))
        self.result = result
        self.hint = hint


class SubmissionImportError(Exception):
    """The submission's module could not be imported; every test reports this."""

    def __init__(self, error: RemoteError, where: str) -> None:
        super().__init__(f"{error.type_name}: {error.remote_message}{where}")
        self.error = error


@dataclass(frozen=True)
class Feedback:
    outcome: Outcome
    message: str
    hint: str = ""
    system_error: str = ""  # set when the failure is ours, not the submission's
    status: Status | None = None  # a verdict status this failure implies (a resource ran out)


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


def explain(exc: BaseException, *, public: bool, source: str, module: str, doc: str = "") -> Feedback:
    """Turn what a test raised into an outcome and the words a learner sees."""
    if isinstance(exc, TooSlow):
        return Feedback(Outcome.TOO_SLOW, str(exc), exc.hint)
    if isinstance(exc, GradingFailure):
        message = exc.message + (f" ({exc.detail})" if public and exc.detail else "")
        return Feedback(Outcome.FAILED, truncate(message), exc.hint)
    if isinstance(exc, RunnerDied):
        return Feedback(Outcome.ERROR, exc.death.message)
    if isinstance(exc, SubmissionImportError):
        return Feedback(Outcome.ERROR, truncate(f"your module failed to import: {exc}"))
    if isinstance(exc, MissingName):
        return Feedback(Outcome.FAILED, f"{exc}: define it with the signature from the skeleton")
    if isinstance(exc, RemoteError):
        return _remote(exc, public=public, source=source, module=module)
    if isinstance(exc, PerformanceInconclusive):
        return Feedback(Outcome.ERROR, str(exc), system_error=str(exc))
    if isinstance(exc, pytest.fail.Exception):
        return Feedback(Outcome.FAILED, truncate(str(exc)))
    if isinstance(exc, AssertionError):
        if public:
            return Feedback(Outcome.FAILED, truncate(_first_lines(str(exc)) or "an assertion failed"))
        return Feedback(Outcome.FAILED, "a hidden check failed" + (f": {doc}" if doc else ""))
    what = f"{type(exc).__name__}: {exc}" if public else type(exc).__name__
    return Feedback(Outcome.ERROR, truncate(f"the test could not check your result ({what})"))


def _remote(exc: RemoteError, *, public: bool, source: str, module: str) -> Feedback:
    feedback = _remote_feedback(exc, public=public, source=source, module=module)
    case = getattr(exc, "shrunk_case", None)  # set by the harness when a test shrank the failing case
    if isinstance(case, str):
        return dataclasses.replace(feedback, message=truncate(f"{case}: {feedback.message}"))
    return feedback


def _remote_feedback(exc: RemoteError, *, public: bool, source: str, module: str) -> Feedback:
    where = locate(exc, source, module)
    # In a hidden test, only builtin exception types are named: the submission chooses its own
    # class names and messages, and could make them carry the hidden inputs.
    type_name = exc.type_name if public else exc.builtin_type
    if exc.type_name == "ForbiddenError":
        said = f": {exc.remote_message}" if public else ""
        return Feedback(
            Outcome.FAILED, truncate(f"your code called a function this exercise forbids{said}{where}")
        )
    if type_name == "NotImplementedError":
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
    code = exc.info.get("errno")
    if isinstance(code, int) and code in RESOURCE_ERRNOS and "OSError" in exc.info.get("bases", []):
        return Feedback(Outcome.ERROR, f"{RESOURCE_ERRNOS[code]}{where}", status=Status.RUNTIME_ERROR)
    if exc.type_name == "RuntimeError" and "can't start new thread" in message:
        return Feedback(Outcome.ERROR, f"too many processes or threads{where}", status=Status.RUNTIME_ERROR)
    text = f"your code raised {type_name}"
    if public and exc.remote_message:
        text += f": {exc.remote_message}"
    return Feedback(Outcome.ERROR, truncate(text + where))


def locate(exc: RemoteError, source: str, module: str) -> str:
    """` (bpe.py, line 12, in merge: `counts[pair] += 1`)` from the submission's own frames,
    with the line read from our copy of the source, not from anything the runner said."""
    frames = exc.frames
    if not frames:
        return ""
    line_no, func = frames[-1]
    lines = source.splitlines()
    text = lines[line_no - 1].strip() if 0 < line_no <= len(lines) else ""
    shown = f": `{truncate(text, 120)}`" if text else ""
    return f" ({module}.py, line {line_no}, in {func}{shown})"


def describe_performance(result: PerfResult) -> str:
    if result.kind == "exponent":
        what = {
            "time": "CPU time",
            "flops": "FLOP count",
            "ops": "tensor op count",
            "allocation": "largest allocation",
        }
        slack = f" (+{result.tolerance:g})" if result.tolerance else ""
        return (
            f"{result.name}: your code's {what.get(result.metric, result.metric)} grows like "
            f"n^{result.ratio:.2f} (the reference's like n^{result.reference_value:.2f}); "
            f"the limit is n^{result.threshold:g}{slack}"
        )
    return _describe_ratio(result)


def _describe_ratio(result: PerfResult) -> str:
    limit = f"the limit is {result.threshold:g}x" + (
        f" (+{result.tolerance:.0%} tolerance)" if result.tolerance else ""
    )
    if result.metric == "time":
        ci = ""
        if result.ci_low is not None and result.ci_high is not None:
            ci = f", 95% interval {result.ci_low:.2f}-{result.ci_high:.2f}x over {result.pairs} pairs"
        return f"{result.name}: your code took {result.ratio:.2f}x the reference's CPU time{ci}; {limit}"
    if result.metric == "memory":
        yours, theirs = result.submission_value / 2**20, result.reference_value / 2**20
        return (
            f"{result.name}: your code's peak memory was {result.ratio:.2f}x the reference's "
            f"({yours:.1f} MiB against {theirs:.1f} MiB); {limit}"
        )
    what = {
        "allocation": "largest single allocation",
        "flops": "floating-point operation count",
        "ops": "tensor op count",
    }
    figures = f"{result.submission_value:.3g} against {result.reference_value:.3g} {result.unit}"
    return (
        f"{result.name}: your code's {what.get(result.metric, result.metric)} was {result.ratio:.2f}x the "
        f"reference's ({figures}); {limit}"
    )


def _first_lines(text: str, count: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[:count])
