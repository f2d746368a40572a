"""What a learner is told: everything in public tests, no values from hidden inputs otherwise."""

from __future__ import annotations

import dataclasses
import errno
from typing import Any

import pytest

from grader.harness.feedback import Feedback, TooSlow, explain
from grader.harness.location import Locator
from grader.remote import Death, MissingName, RunnerDied, remote_error
from grader.runner.messages import ErrorReport
from grader.testing import GradingFailure
from grader.verdict import Outcome, PerfResult, Status, describe_performance

SOURCE = "def f(x):\n    y = x * 2\n    raise ValueError(f'bad {x}')\n"


def err(type_name: str, message: str, bases: list[str], **extra: Any) -> Exception:
    return remote_error(
        ErrorReport.from_wire(
            {"type": type_name, "message": message, "bases": bases, "frames": [[3, "f"]], **extra}
        )
    )


def say(exc: BaseException, public: bool) -> Feedback:
    """What a public (or hidden) test shows: `message` is replaced by what `shown` chooses."""
    feedback = explain(exc, locator=Locator(SOURCE, "mod"), hidden=not public, doc="Checks the thing.")
    return dataclasses.replace(feedback, message=feedback.shown(public))


def test_remote_exceptions_keep_their_builtin_type() -> None:
    exc = err("MyError", "m", ["ValueError", "Exception", "BaseException", "object"])
    assert isinstance(exc, ValueError)


def test_submission_exception_message_is_hidden_in_hidden_tests() -> None:
    exc = err("ValueError", "bad [0.123, 4.56]", ["ValueError", "Exception"])
    hidden, public = say(exc, public=False), say(exc, public=True)
    assert "0.123" not in hidden.message and "0.123" in public.message
    assert "(mod.py, line 3, in f: `raise ValueError(f'bad {x}')`)" in hidden.message
    assert hidden.outcome is Outcome.ERROR


def test_grading_failure_detail_only_in_public_tests() -> None:
    exc = GradingFailure("the output: differs", detail="got 1.5, expected 2.5", hint="scale?")
    assert say(exc, False).message == "the output: differs"
    assert "got 1.5" in say(exc, True).message
    assert say(exc, False).hint == "scale?"


def test_plain_asserts_in_hidden_tests_show_the_docstring_only() -> None:
    try:
        assert [1, 2] == [1, 3]
    except AssertionError as exc:
        hidden, public = say(exc, False), say(exc, True)
    assert hidden.message == "a hidden check failed: Checks the thing."
    assert "[1, 2]" in public.message


def test_not_implemented_gets_a_hint_about_the_skeleton() -> None:
    fb = say(err("NotImplementedError", "f", ["NotImplementedError", "RuntimeError"]), False)
    assert fb.outcome is Outcome.FAILED and "skeleton" in fb.hint


@pytest.mark.parametrize(
    ("exc", "status", "words"),
    [
        (err("MemoryError", "", ["MemoryError"]), Status.MEMORY_LIMIT, "ran out of memory"),
        (
            err("RuntimeError", "DefaultCPUAllocator: can't allocate memory", ["RuntimeError"]),
            Status.MEMORY_LIMIT,
            "ran out of memory",
        ),
        (
            err("OSError", "No space left", ["OSError"], errno=errno.ENOSPC),
            Status.RUNTIME_ERROR,
            "disk is full",
        ),
        (
            err("OSError", "Too many", ["OSError"], errno=errno.EMFILE),
            Status.RUNTIME_ERROR,
            "too many open files",
        ),
        (
            err("BlockingIOError", "", ["BlockingIOError", "OSError"], errno=errno.EAGAIN),
            Status.RUNTIME_ERROR,
            "processes or threads",
        ),
        (err("RuntimeError", "can't start new thread", ["RuntimeError"]), Status.RUNTIME_ERROR, "threads"),
    ],
)
def test_exhausted_resources_imply_a_status(exc: Exception, status: Status, words: str) -> None:
    fb = say(exc, False)
    assert fb.status is status and words in fb.message


def test_runner_death_and_missing_names() -> None:
    died = say(RunnerDied(Death(Status.TIMEOUT, "time limit: 5 s")), False)
    assert (died.outcome, died.message) == (Outcome.ERROR, "time limit: 5 s")
    exited = Death(Status.RUNTIME_ERROR, "the runner process exited", "the runner process exited (code 7)")
    assert say(RunnerDied(exited), False).message == "the runner process exited"
    assert say(RunnerDied(exited), True).message == "the runner process exited (code 7)"
    missing = say(MissingName("mod.py does not define g"), False)
    assert missing.outcome is Outcome.FAILED and "define it" in missing.message


def test_unexpected_test_errors_do_not_leak_in_hidden_tests() -> None:
    fb = say(TypeError("unsupported operand 'secret-value'"), False)
    assert fb.message == "the test could not check your result (TypeError)"


def test_too_slow_describes_the_measurement() -> None:
    result = PerfResult(
        name="speed",
        metric="time",
        ratio=5.2,
        threshold=3,
        tolerance=0.1,
        passed=False,
        decided_by="ci",
        ci_low=4.8,
        ci_high=5.6,
        pairs=21,
    )
    fb = say(TooSlow(result, "loop?"), False)
    assert fb.outcome is Outcome.TOO_SLOW and fb.hint == "loop?"
    assert fb.message == (
        "speed: your code took 5.20x the reference's CPU time, 95% interval 4.80-5.60x over 21 pairs; "
        "the limit is 3x (+10% tolerance)"
    )


@pytest.mark.parametrize(
    ("metric", "words"),
    [
        ("memory", "peak memory was 2.00x"),
        ("allocation", "largest single allocation"),
        ("flops", "floating-point"),
    ],
)
def test_other_metrics_are_described(metric: str, words: str) -> None:
    result = PerfResult(
        name="m",
        metric=metric,
        ratio=2.0,
        threshold=1.5,
        tolerance=0,
        passed=False,
        decided_by="single",
        submission_value=2 * 2**20,
        reference_value=2**20,
    )
    assert words in describe_performance(result)


def test_hidden_tests_name_only_builtin_exception_types() -> None:
    exc = err("L_0p173_m0p093", "x", ["ValueError", "Exception", "BaseException", "object"])
    assert (
        "L_0p173" not in say(exc, False).message and "your code raised ValueError" in say(exc, False).message
    )
    assert "L_0p173_m0p093" in say(exc, True).message


def test_a_forged_forbidden_error_cannot_speak_in_hidden_tests() -> None:
    exc = err("ForbiddenError", "LEAK [0.17, -0.09]", ["RuntimeError"])
    hidden = say(exc, False)
    assert hidden.outcome is Outcome.FAILED and "LEAK" not in hidden.message
    assert hidden.message.startswith("your code called a function this exercise forbids")


def test_the_shrunk_case_comes_from_the_harness_not_the_runner() -> None:
    forged = err("ValueError", "m", ["ValueError"], case="LEAK [1, 2]")
    assert "LEAK" not in say(forged, False).message
    forged.shrunk_case = "smallest failing case: n=2 (seed 0)"  # type: ignore[attr-defined]
    assert say(forged, False).message.startswith(
        "smallest failing case: n=2 (seed 0): your code raised ValueError"
    )


def test_malformed_runner_errors_are_reduced_to_safe_fields() -> None:
    raw = {"type": 7, "message": "m" * 10_000, "frames": [["x", "f"], [3, "g"]], "exit_code": 10**1000}
    info = ErrorReport.from_wire({**raw, "bases": "ValueError"})
    assert info.type == "Exception" and len(info.message) <= 4000
    assert info.frames == ((3, "g"),) and info.exit_code is None and info.bases == ()
    raw = {"bases": ["OSError", 3], "errno": 0, "stage": "elsewhere", "exit_code": 256}
    info = ErrorReport.from_wire(raw)
    assert info.bases == ("OSError",) and info.errno is None and info.stage is None and info.exit_code is None


def test_remote_exceptions_with_special_constructors_keep_their_type() -> None:
    exc = err(
        "UnicodeDecodeError", "bad byte", ["UnicodeDecodeError", "UnicodeError", "ValueError", "Exception"]
    )
    assert isinstance(exc, UnicodeDecodeError) and isinstance(exc, ValueError)
    assert str(exc) == "UnicodeDecodeError: bad byte"


LOCATED = (
    "def f(x):\n    # a comment\n    y = x * 2\n\n    return y[0]\n\n"
    "def g():\n    return [\n        1,\n    ]\n"
)


@pytest.mark.parametrize(
    ("frames", "shown"),
    [
        ([[5, "f"]], " (mod.py, line 5, in f: `return y[0]`)"),
        ([[9, "g"]], " (mod.py, line 9, in g: `1,`)"),  # inside a statement that spans lines
        ([[5, "<lambda>"]], " (mod.py, line 5, in f: `return y[0]`)"),  # the name is ours
        ([[5, "LEAK_0p17"]], ""),  # a renamed code object
        ([[2, "f"]], ""),  # a comment holds no code
        ([[4, "f"]], ""),  # nor does a blank line
        ([[5, "g"]], ""),  # line 5 is not in g
        ([[173, "f"]], ""),  # a moved first line, past the end of the source
        ([[0, "f"]], ""),
        ([], ""),
    ],
)
def test_a_location_is_shown_only_where_our_parse_vouches_for_it(frames: list[Any], shown: str) -> None:
    report = ErrorReport.from_wire({"type": "IndexError", "bases": ["IndexError"], "frames": frames})
    error = remote_error(report)
    assert Locator(LOCATED, "mod").where(error) == shown


def test_hidden_tests_show_one_location_per_grading() -> None:
    locator = Locator(LOCATED, "mod")

    def at(line: int, function: str) -> Any:
        return remote_error(ErrorReport("E", bases=("IndexError",), frames=((line, function),)))

    assert locator.where_hidden(at(5, "f")).endswith("line 5, in f: `return y[0]`)")
    assert locator.where_hidden(at(9, "g")) == ""  # a second place would let the choice spell data
    assert locator.where_hidden(at(5, "f")) != ""  # the first place, again
    assert locator.where(at(9, "g")) != ""  # public tests are not limited


def test_a_missing_name_in_the_runner_is_named_by_the_harness() -> None:
    from grader.remote import Lookup

    exc = err("MissingTarget", "LEAK", ["AttributeError"], stage="lookup")
    exc.lookup = Lookup("lookup", "merge")
    hidden = say(exc, False)
    assert hidden.outcome is Outcome.FAILED and "`merge`" in hidden.message and "LEAK" not in hidden.message
    graph = err("NoGradient", "LEAK", ["ValueError"])
    graph.lookup = Lookup("no-grad", "loss")
    assert "not connected to the inputs' gradients" in say(graph, False).message
