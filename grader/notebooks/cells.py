"""Running an nbgrader test cell in the trusted harness, against the sandboxed submission.

A test cell of an imported notebook is the instructor's code (`assert add(1, 2) == 3`): it runs
here, on the trusted side, in a namespace where the notebook's setup has run and each name the
solution defines is bound to the submission running in the sandbox. The learner's code never runs
here: calling `add` is a call into the sandbox.
"""

from __future__ import annotations

import linecache
import sys
from typing import Any

from grader.testing.asserts import GradingFailure


def run_test_cell(
    submission: Any, setup: str, callables: list[str], values: list[str], code: str, name: str
) -> None:
    """Run the test cell `code`; a failed `assert` is reported with its line."""
    namespace: dict[str, Any] = {"__name__": f"test_cell_{name}"}
    exec(compile(setup, "<setup cells>", "exec"), namespace)  # noqa: S102 - the instructor's code
    for attr in callables:
        namespace[attr] = getattr(submission, attr)
    for attr in values:
        namespace[attr] = getattr(submission, attr).value()
    filename = f"<test cell {name}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    try:
        exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - the instructor's test cell
    except AssertionError as exc:
        if str(exc) or isinstance(exc, GradingFailure):
            raise
        line = _failing_line(exc, filename, code)
        label = name.removeprefix("test_").removesuffix("_hidden")
        raise GradingFailure(
            f"a check of the test cell {label} did not hold", detail=f"this check did not hold: {line}"
        ) from None


def _failing_line(exc: BaseException, filename: str, code: str) -> str:
    tb = exc.__traceback__ or sys.exc_info()[2]
    lineno = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    lines = code.splitlines()
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else "an assert of the test cell"
