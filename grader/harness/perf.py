"""The `perf` fixture: performance checks declared in exercise.toml, measured against the
reference running in its own sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from grader.events import Event, EventKind
from grader.harness.feedback import TooSlow
from grader.harness.results import Results
from grader.harness.session import GradingSession
from grader.measurement import protocol
from grader.measurement.protocol import MakeCall, SizedCall
from grader.remote import RunnerClient
from grader.runner import build, messages
from grader.spec import PerformanceSpec
from grader.testing.asserts import assert_close
from grader.testing.calls import Call
from grader.verdict import PerfResult


class ExerciseMisconfigured(Exception):
    """The exercise's tests and its exercise.toml disagree: an authoring bug, never the student's."""


class Perf:
    def __init__(self, session: GradingSession, results: Results, test: str) -> None:
        self.session = session
        self.results = results
        self.test = test

    def measure(
        self,
        name: str,
        make_call: MakeCall,
        *,
        check: Callable[[Any, Any], None] | None = None,
        hint: str = "",
    ) -> PerfResult:
        """Measure the threshold `name` of exercise.toml on calls made by `make_call(rng)`.

        Raises TooSlow (the test's outcome becomes too_slow) when the threshold is missed, and
        GradingFailure when a measured call returned a wrong output.
        """
        spec = self._spec(name, scaling=False)
        self._measurable(spec)
        fixed = self._calibrating(name)
        student, reference = self._runners()
        checker = check or _default_check(spec)
        self.session.events(Event(EventKind.PERFORMANCE, f"measuring {name}"))

        def progress(done: int, total: int) -> None:
            self.session.events(Event(EventKind.PERFORMANCE, f"{name}: pair {done}", done, total))

        def busy(pause: float) -> None:
            message = f"{name}: the machine is busy; measuring again in {pause:g} s"
            self.session.events(Event(EventKind.PERFORMANCE, message))

        if spec.metric == "time":
            result = protocol.time_ratio(
                name, student, reference, make_call, spec, checker, progress, busy, fixed=fixed
            )
        elif spec.metric == "memory":
            result = protocol.memory_ratio(name, student, reference, make_call, spec, checker)
        elif spec.metric == "device_time":
            result = protocol.device_time_ratio(name, student, reference, make_call, spec, checker, progress)
        else:
            result = protocol.probe_ratio(name, student, reference, make_call, spec, checker)
        return self._record(result, hint)

    def scaling(
        self,
        name: str,
        make_call: SizedCall,
        *,
        check: Callable[[Any, Any], None] | None = None,
        hint: str = "",
    ) -> PerfResult:
        """Measure how the metric of threshold `name` grows over its `sizes`: `make_call(rng, n)`
        makes the call for size n. Raises TooSlow when the growth exponent is over the limit."""
        spec = self._spec(name, scaling=True)
        self._calibrating(name)
        student, reference = self._runners()
        self.session.events(Event(EventKind.PERFORMANCE, f"measuring how {name} grows"))
        result = protocol.scaling(name, student, reference, make_call, spec, check or _default_check(spec))
        return self._record(result, hint)

    def _spec(self, name: str, *, scaling: bool) -> PerformanceSpec:
        spec = self.session.exercise.spec.performance.get(name)
        if spec is None:
            raise ExerciseMisconfigured(f"performance check {name!r} is not declared in exercise.toml")
        if spec.scaling != scaling:
            use = "perf.scaling" if spec.scaling else "perf.measure"
            raise ExerciseMisconfigured(f"performance check {name!r} is measured with {use}")
        return spec

    def device(self) -> str:
        """Where the submission computes: "cuda:N", or "cpu" (Triton kernels interpreted)."""
        student = self.session.student
        return student.runtime.device if student is not None else "cpu"

    def on_gpu(self) -> bool:
        return self.device().startswith("cuda")

    def _measurable(self, spec: PerformanceSpec) -> None:
        """Kernel figures are counted by Triton's interpreter, on CPU hosts; device time needs a
        GPU. A check that cannot be measured where this grading runs is skipped, saying why."""
        self.session.submission()
        if not protocol.measurable_on(spec.metric, self.device()):
            if spec.metric == "device_time":
                pytest.skip("speed on a GPU is measured on GPU hosts only")
            pytest.skip("kernel memory traffic is counted on CPU hosts, where kernels are interpreted")

    def _calibrating(self, name: str) -> protocol.FixedPairs | None:
        """While thresholds are calibrated, how to measure check `name`; a check that is not
        being calibrated is skipped."""
        calibration = self.session.calibration
        if calibration is None:
            return None
        if name not in calibration:
            pytest.skip(f"{name} is not being calibrated")
        return calibration[name]

    def _runners(self) -> tuple[RunnerClient, RunnerClient]:
        self.session.submission()  # raises if the submission is not there to measure
        if self.session.student is None:
            raise RuntimeError("no submission runner")
        return self.session.student, self.session.reference_client()

    def _record(self, result: PerfResult, hint: str) -> PerfResult:
        result.test = self.test
        self.results.performance.append(result)
        if not result.passed:
            raise TooSlow(result, hint)
        return result

    def peak_memory(self, work: Callable[[], Any]) -> tuple[Any, int]:
        """Run `work()` (any number of calls to the submission) and return its result and the
        submission's peak memory meanwhile, in bytes above its usage before it was imported,
        measured from outside (for checks such as "streams in bounded memory")."""
        self.session.submission()
        student = self.session.student
        if student is None:
            raise RuntimeError("no submission runner")
        student.request(messages.Settle(), what="settling memory")
        peak = student.process.watch_memory_peak()
        result = work()
        return result, peak.above_baseline()

    def probe(self, call: Call) -> dict[str, Any]:
        """What one call of the submission allocates and computes (runner-reported)."""
        self.session.submission()
        student = self.session.student
        if student is None:
            raise RuntimeError("no submission runner")
        return protocol.probe(student, call)[1]

    def kernel_probe(self, call: Call) -> dict[str, Any]:
        """What one call's Triton kernels did, counted in the interpreter (see
        grader.runner.kernels): launches, programs, loaded_bytes, stored_bytes, traffic_bytes,
        dram_bytes, dot_flops. Skips the test on a GPU host, where kernels are compiled."""
        self.session.submission()
        if self.on_gpu():
            pytest.skip("kernel memory traffic is counted on CPU hosts, where kernels are interpreted")
        found = self.probe(call)
        if found.get("interpreted") is not True:
            raise ExerciseMisconfigured("kernel figures need triton in the exercise's preload")
        return found

    def compile_kernels(self, arch: int = 90) -> list[dict[str, Any]]:
        """Compile every Triton kernel the submission launched so far for a GPU of compute
        capability `arch` (90: H100), no GPU needed; per kernel: `kernel`, `registers`,
        `spill_bytes`, `shared_bytes`, `tensor_cores`, `error` (runner-reported)."""
        self.session.submission()
        student = self.session.student
        if student is None:
            raise RuntimeError("no submission runner")
        reply = student.request(
            messages.Build(arch), timeout=student.limits.cpu_seconds, what="compiling the kernels"
        )
        return [_build_figures(found) for found in reply.kernels] if isinstance(reply.kernels, list) else []


def _build_figures(found: Any) -> dict[str, Any]:
    """One kernel's compile report as plain, typed values (anything else counts as a failure)."""
    if not isinstance(found, dict):
        return build.failed("", "no report")

    def count(key: str) -> int:
        value = found.get(key)
        return value if type(value) is int and value >= 0 else 0

    return {
        "kernel": str(found.get("kernel", ""))[:100],
        "registers": count("registers"),
        "spill_bytes": count("spill_bytes"),
        "shared_bytes": count("shared_bytes"),
        "tensor_cores": found.get("tensor_cores") is True,
        "error": str(found.get("error", ""))[:400],
    }


def _default_check(spec: PerformanceSpec) -> Callable[[Any, Any], None]:
    """Outputs of measured calls are checked with the threshold's tolerance (`rtol`, `atol` in
    exercise.toml), which an author sets to the correctness tests' own."""

    def check(actual: Any, expected: Any) -> None:
        assert_close(actual, expected, what="the output of a measured call", rtol=spec.rtol, atol=spec.atol)

    return check
