"""The pytest plugin that runs an exercise's tests against a submission and records the results.

Tests get the fixtures of `grader.harness.fixtures`: `submission` (the submission's module,
remote), `reference` (the reference solution, local), `perf` (performance checks), `seed` and
`rng` (deterministic per test), and `device`. Markers: `performance` (run last, only once every
correctness test passed), `weight(n)`, `feedback("full")` (a hidden test may show values),
`hint("...")`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import re
import sys
import time
import warnings
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from grader.events import Event, EventKind
from grader.harness import fixtures
from grader.harness.feedback import Feedback, explain
from grader.harness.perf import ExerciseMisconfigured
from grader.harness.results import Results
from grader.harness.session import GradingSession
from grader.measurement.protocol import PerformanceInconclusive
from grader.verdict import Outcome, TestResult
from sandbox import SandboxError

MARKERS = (
    "performance: a performance check; runs after the correctness tests, only if they all passed",
    "weight(n): how much the test counts towards the score (default 1)",
    "feedback(level): 'full' lets a hidden test show values in its failure messages",
    "hint(text): a hint shown to the learner when the test fails",
)
OURS = (ExerciseMisconfigured, PerformanceInconclusive, SandboxError)


class GradingPlugin:
    def __init__(self, session: GradingSession) -> None:
        self.session = session
        self.results = Results()
        self.items: list[pytest.Item] = []
        self._pending: dict[pytest.Item, dict[str, Any]] = {}
        self.reported: set[pytest.Item] = set()

    # ------------------------------------------------------------------ hooks

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[fixtures.SESSION] = self.session
        config.stash[fixtures.RESULTS] = self.results
        for marker in MARKERS:
            config.addinivalue_line("markers", marker)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.results.collect_errors.append(str(report.longrepr)[-3000:])

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(
            key=lambda item: (item.get_closest_marker("performance") is not None, not self._public(item))
        )
        self.items = list(items)

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Items are told apart by identity: the test files live outside pytest's rootdir, so a
        # public and a hidden test of the same name share a node id.
        index = next((i for i, known in enumerate(self.items) if known is item), 0)
        student = self.session.student
        if self._public(item):
            self.session.events(Event(EventKind.TEST, f"running {item.name}", index + 1, len(self.items)))
        elif student is not None and not student.hidden:
            # one event for all hidden tests: when each began would time them one by one
            self.session.events(Event(EventKind.STAGE, "running the hidden tests"))
            student.enter_hidden()
        if item.get_closest_marker("performance") is not None:
            if not self.session.measure:
                pytest.skip("performance is not measured in this run")
            if self.results.has_failures():
                pytest.skip("performance is measured once every correctness test passes")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, Any]:
        report = yield
        state = self._pending.setdefault(item, {"duration": 0.0, "feedback": None})
        state["duration"] += report.duration
        if state["feedback"] is None:
            if report.skipped:
                reason = (
                    getattr(call.excinfo.value, "msg", "skipped") if call.excinfo is not None else "skipped"
                )
                state["feedback"] = Feedback(Outcome.SKIPPED, str(reason))
            elif report.failed and call.excinfo is not None:
                state["feedback"] = self._explain(item, call.excinfo.value)
            elif call.when == "call" and report.passed:
                state["feedback"] = Feedback(Outcome.PASSED, "")
        if call.when == "teardown":
            self._record(item, state)
        return report

    # ------------------------------------------------------------------ results

    def _explain(self, item: pytest.Item, exc: BaseException) -> Feedback:
        if isinstance(exc, OURS) or getattr(exc, "origin", "submission") == "reference":
            message = f"{type(exc).__name__}: {exc}"
            return Feedback(
                Outcome.ERROR,
                "the grader failed while running this test (not your fault)",
                system_error=message,
            )
        try:
            feedback = explain(
                exc, locator=self.session.locator, hidden=not self._public(item), doc=_doc(item)
            )
        except Exception as error:  # noqa: BLE001 - describing a failure must not lose the verdict
            message = f"cannot describe {type(exc).__name__}: {type(error).__name__}: {error}"
            return Feedback(
                Outcome.ERROR,
                "the grader failed while checking this test (not your fault)",
                system_error=message,
            )
        hint_marker = item.get_closest_marker("hint")
        if not feedback.hint and hint_marker is not None and hint_marker.args:
            feedback = dataclasses.replace(feedback, hint=str(hint_marker.args[0]))
        return feedback

    def _record(self, item: pytest.Item, state: dict[str, Any]) -> None:
        self.reported.add(item)
        feedback: Feedback = state["feedback"] or Feedback(Outcome.ERROR, "the test did not report a result")
        if feedback.system_error and not self.results.system_error:
            self.results.system_error = feedback.system_error
        reveal = self._reveals(item)
        message = feedback.shown(reveal)
        if feedback.status is not None:
            self.results.implied.append((feedback.status, message))
        weight = item.get_closest_marker("weight")
        public = self._public(item)
        result = TestResult(
            name=item.name,
            visibility="public" if public else "hidden",
            outcome=feedback.outcome,
            message=message,
            hint=feedback.hint,
            # a hidden test's own duration could be made to spell out its inputs
            duration_s=round(state["duration"], 4) if public else None,
            weight=float(weight.args[0]) if weight is not None and weight.args else 1.0,
            description=_doc(item),
        )
        performance = item.get_closest_marker("performance") is not None
        self.results.add(result, performance=performance, duration=state["duration"])

    def _reveals(self, item: pytest.Item) -> bool:
        """Whether a test's failure may be told in full: its inputs are public, or its author
        marked it `feedback("full")`."""
        marker = item.get_closest_marker("feedback")
        return self._public(item) or (marker is not None and marker.args[:1] == ("full",))

    def _public(self, item: pytest.Item) -> bool:
        return str(getattr(item, "path", "")) == str(self.session.exercise.public_tests.resolve())

    def finish(self, exit_code: int, seconds: float) -> Results:
        """The results, once pytest has ended with `exit_code` after `seconds`. Expected tests
        that reported nothing (the run was cut short) are listed as missing: never a pass."""
        self.results.exit_code = exit_code
        self.results.tests_s = max(seconds - self.results.performance_s, 0.0)
        self.results.missing = [item.name for item in self.items if item not in self.reported]
        return self.results


def _doc(item: pytest.Item) -> str:
    """A test's description: its docstring's first paragraph, on one line."""
    doc = getattr(getattr(item, "obj", None), "__doc__", None) or ""
    paragraph = re.split(r"\n[ \t]*\n", doc.strip(), maxsplit=1)[0]
    return " ".join(paragraph.split())


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """The tests' own torch work (oracles, inputs, comparisons) on one thread while they run.

    Their tensors are small, and on a busy host (several gradings at once, a deadline) torch's
    thread pool makes every small op many times slower than one thread does. The submission's
    runner sets its own threads."""
    if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_pytest(plugin: GradingPlugin, paths: list[str], workdir: str) -> Results:
    """Run pytest in this process on `paths`, isolated from any project configuration; what
    the tests observed."""
    ini = f"{workdir}/pytest.ini"
    with open(ini, "w") as f:
        f.write("[pytest]\n")
    args = [
        *paths,
        "-c", ini, "--rootdir", workdir,
        "-p", "no:cacheprovider", "-p", "no:stepwise", "-p", "no:warnings", "-p", "no:terminal",
        "--import-mode=importlib", "--strict-markers", "-s",
        # only our own plugins: whatever else is installed beside the grader (hypothesis, anyio,
        # xdist...) must not change how hidden tests run, nor cost an import on every grading
        "--disable-plugin-autoload",
    ]  # fmt: skip
    started = time.perf_counter()
    modules = set(sys.modules)
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()  # the host process's warning filters are not the exercise's
            warnings.simplefilter("default")
            with one_torch_thread():
                code = int(pytest.main(args, plugins=[plugin, fixtures]))
    finally:
        for name in set(sys.modules) - modules:
            if (
                name.startswith(("test_public", "test_hidden"))
                or "test_public" in name
                or "test_hidden" in name
            ):
                sys.modules.pop(name, None)
    return plugin.finish(code, time.perf_counter() - started)
