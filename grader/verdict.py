"""Verdicts: what the harness observed about one submission, and nothing the runner claimed."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, computed_field

SCHEMA_VERSION = 1
MESSAGE_CHARS = 1000


class Status(StrEnum):
    """A verdict's status. `severity` orders them: the overall status is the most severe one
    that applies (a crash outranks a failed test, a failed test outranks being slow)."""

    PASSED = "passed"
    FAILED = "failed"
    TOO_SLOW = "too_slow"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    RUNTIME_ERROR = "runtime_error"
    REJECTED = "rejected"
    SYSTEM_ERROR = "system_error"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def earned(self) -> bool:
        """A verdict the student earned (pass or not), as opposed to our own failure."""
        return self is not Status.SYSTEM_ERROR

    @property
    def label(self) -> str:
        return _LABELS[self]


_SEVERITY = {
    Status.PASSED: 0,
    Status.TOO_SLOW: 1,
    Status.FAILED: 2,
    Status.RUNTIME_ERROR: 3,
    Status.OUTPUT_LIMIT: 4,
    Status.MEMORY_LIMIT: 5,
    Status.TIMEOUT: 6,
    Status.REJECTED: 7,
    Status.SYSTEM_ERROR: 8,
}
_LABELS = {
    Status.PASSED: "Passed",
    Status.FAILED: "Failed",
    Status.TOO_SLOW: "Correct but over a performance limit",  # time, memory, FLOPs or allocations
    Status.TIMEOUT: "Time limit exceeded",
    Status.MEMORY_LIMIT: "Memory limit exceeded",
    Status.OUTPUT_LIMIT: "Output limit exceeded",
    Status.RUNTIME_ERROR: "Runtime error",
    Status.REJECTED: "Rejected",
    Status.SYSTEM_ERROR: "System error (ours, not yours)",
}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.severity, default=Status.PASSED)


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # a check did not hold
    ERROR = "error"  # the test could not complete (the submission raised, or the runner died)
    TOO_SLOW = "too_slow"  # correct outputs, but a performance threshold was missed
    SKIPPED = "skipped"  # not run on purpose (performance tests after a failure)


class TestResult(BaseModel):
    __test__ = False  # not a pytest test class, despite the name

    name: str
    visibility: str  # "public" | "hidden"
    outcome: Outcome
    message: str = ""
    hint: str = ""
    duration_s: float | None = 0.0  # None for hidden tests: never shown one by one
    weight: float = 1.0
    description: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def function(self) -> str:
        """The test function: the name without its parameters."""
        return function_of(self.name)

    @property
    def case(self) -> str:
        """What tells a parametrised test's cases apart: the ids its author gave them ("" for none)."""
        rest = self.name.partition("[")[2]
        return rest[:-1] if rest.endswith("]") else rest


def function_of(name: str) -> str:
    """A test result's test function: its name without the parameter ids (`test_mask[4-8]` is
    `test_mask`), as `# caught-by:` names tests."""
    return name.split("[", 1)[0]


class Mistake(BaseModel):
    """Failing tests that share one mistake: the hint their author wrote for it, or (with no hint)
    one exception at one place, or one test function's cases. See `mistakes`."""

    title: str  # the hint; else what failed, in the test's own words
    hint: str = ""
    kind: str  # "hint" | "error" | "test"
    outcome: Outcome  # the most severe outcome among its tests
    tests: list[str]  # names, in the verdict's order
    example: str  # the failing case to look at first (see `mistakes`)
    public: int = 0  # how many of its tests are public (their inputs are in test_public.py)

    def others(self) -> str:
        """Its tests other than the example, by test function: "test_a x3, test_b"."""
        functions: dict[str, int] = {}
        for name in self.tests:
            if name != self.example:
                function = function_of(name)
                functions[function] = functions.get(function, 0) + 1
        return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in functions.items())


class Counts(BaseModel):
    """How many tests passed, failed and did not run. Every report says the same counts."""

    passed: int
    failed: int
    not_run: int
    total: int


class Metric(StrEnum):
    """What a performance threshold compares."""

    TIME = "time"  # CPU time, from outside the sandbox
    MEMORY = "memory"  # peak memory of one call's exchange, from outside
    ALLOCATION = "allocation"  # the largest single allocation (runner-reported)
    FLOPS = "flops"  # floating-point operations (runner-reported)
    OPS = "ops"  # tensor operations dispatched (runner-reported)
    TRAFFIC = "traffic"  # bytes Triton kernels loaded and stored, in the interpreter (runner-reported)
    DRAM = "dram"  # the same, behind a model of the L2 cache (runner-reported)
    LAUNCHES = "launches"  # Triton kernel launches (runner-reported)
    DEVICE_TIME = "device_time"  # time on a GPU, between device synchronisations


class PerfKind(StrEnum):
    RATIO = "ratio"  # submission / reference
    EXPONENT = "exponent"  # b of figure ~ n^b, fitted over sizes


class DecidedBy(StrEnum):
    CI = "ci"  # the bootstrap interval lies on one side of the limit
    MEDIAN = "median"  # the last checkpoint, on the median alone
    CLEAR_CUT = "clear-cut"  # every one of the first pairs far over (or under) the limit
    SINGLE = "single"  # one exact figure (a count)
    FIT = "fit"  # a growth exponent's least-squares fit


class PerfResult(BaseModel):
    """One performance measurement: the submission against the reference, as a ratio."""

    name: str
    metric: Metric
    kind: PerfKind = PerfKind.RATIO
    ratio: float  # submission / reference (median for time); for kind "exponent", the exponent
    threshold: float
    tolerance: float
    passed: bool
    decided_by: DecidedBy
    ci_low: float | None = None
    ci_high: float | None = None
    submission_value: float = 0.0  # median absolute figure (seconds, bytes, flops)
    reference_value: float = 0.0
    unit: str = ""
    pairs: int = 0
    runner_reported: bool = False  # measured inside the submission's own process
    source: str = ""  # "cgroup" | "procfs" | "probe"
    wall_ratio: float | None = None  # secondary figure for time: wall-clock ratio
    samples: list[list[float]] = Field(default_factory=list)
    test: str = ""


class Timings(BaseModel):
    static_s: float = 0.0
    sandbox_start_s: float = 0.0
    runtime_import_s: float = 0.0
    submission_import_s: float = 0.0
    tests_s: float = 0.0
    performance_s: float = 0.0
    total_s: float = 0.0


class Provenance(BaseModel):
    exercise: str
    exercise_version: str
    submission_sha256: str
    sandbox: str = ""
    sandbox_start: str = ""  # "exec": a fresh interpreter; "fork": from a fork server
    image: str | None = None
    image_digest: str | None = None  # the sandbox image's id, for the Docker sandbox
    host: str = ""  # the grading host's name
    runtime_digest: str = ""  # the grading host's installed distributions (grader.fingerprint)
    python: str = ""
    torch: str | None = None
    cuda: str | None = None
    triton: str | None = None
    gpu: str | None = None
    driver: str | None = None
    device: str = "cpu"
    grader_version: str = ""
    seed: int = 0
    measured_by: str = ""
    graded_at: str = ""


class NotebookCell(BaseModel):
    number: int  # 1-based position among the notebook's cells
    role: str  # "solution" | "setup" | "definition"
    grade_id: str = ""
    line: int = 0  # where its code starts in the module that was graded


class NotebookSource(BaseModel):
    """How a submitted notebook became the module that was graded."""

    filename: str
    module: str
    mode: str  # "nbgrader" (solution cells by metadata) | "names" (cells defining the exercise's names)
    cells: list[NotebookCell] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Verdict(BaseModel):
    schema_version: int = SCHEMA_VERSION
    status: Status
    summary: str
    message: str = ""  # why, for rejected, runtime errors and system errors
    score: float = 0.0
    max_score: float = 0.0
    tests: list[TestResult] = Field(default_factory=list)
    performance: list[PerfResult] = Field(default_factory=list)
    output: str = ""  # what the submission printed before the hidden tests, truncated
    output_bytes: int = 0  # what it printed before the hidden tests (counted, if not all kept)
    # it printed during the hidden tests: counted against the limit, never shown, and not even
    # how much (a length is a number the submission chooses)
    output_withheld: bool = False
    output_truncated: bool = False
    limits: dict[str, Any] = Field(default_factory=dict)
    timings: Timings = Field(default_factory=Timings)
    provenance: Provenance
    notebook: NotebookSource | None = None  # set when the submission was a notebook

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def failing_tests(self) -> list[TestResult]:
        return [t for t in self.tests if t.outcome not in (Outcome.PASSED, Outcome.SKIPPED)]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> Counts:
        return count(self.tests)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mistakes(self) -> list[Mistake]:
        return mistakes(self.tests)

    def test(self, name: str) -> TestResult | None:
        return next((t for t in self.tests if t.name == name), None)


def count(tests: list[TestResult]) -> Counts:
    passed = sum(t.outcome is Outcome.PASSED for t in tests)
    not_run = sum(t.outcome is Outcome.SKIPPED for t in tests)
    return Counts(passed=passed, failed=len(tests) - passed - not_run, not_run=not_run, total=len(tests))


def mistakes(tests: list[TestResult]) -> list[Mistake]:
    """The failing tests grouped by the mistake they most likely share, the likeliest root cause
    first.

    Tests whose failures carry the same hint are one group: the hint is the author's diagnosis,
    often of a misconception the output matched. Without a hint, errors with the same message
    (one exception raised at one line) are one group, and any other failures of one test
    function are one group. Groups are ordered by how many failing tests they explain (the
    mistake behind most failures is the one to fix first), then by where their first test
    comes: authors write the simple cases first. A group's example is its first public test
    (its inputs are in test_public.py, so the learner can run it), else its first test.
    Only names, outcomes and authored words are used: nothing a hidden test computed."""
    groups: dict[tuple[str, str], list[tuple[int, TestResult]]] = {}
    for index, test in enumerate(tests):
        if test.outcome in (Outcome.PASSED, Outcome.SKIPPED):
            continue
        if test.hint:
            key = ("hint", test.hint)
        elif test.outcome is Outcome.ERROR and test.message:
            key = ("error", test.message)
        else:
            key = ("test", test.function)
        groups.setdefault(key, []).append((index, test))
    found = []
    for (kind, _), members in sorted(groups.items(), key=lambda g: (-len(g[1]), g[1][0][0])):
        group = [test for _, test in members]
        first = next((t for t in group if t.visibility == "public"), group[0])
        if kind == "hint":
            title = first.hint
        elif kind == "error":
            title = first.message.splitlines()[0]
        else:
            title = f"{first.description or first.function}"
        found.append(
            Mistake(
                title=title,
                hint=first.hint,
                kind=kind,
                outcome=max((t.outcome for t in group), key=_OUTCOME_ORDER.index),
                tests=[t.name for t in group],
                example=first.name,
                public=sum(t.visibility == "public" for t in group),
            )
        )
    return found


_OUTCOME_ORDER = [Outcome.PASSED, Outcome.SKIPPED, Outcome.TOO_SLOW, Outcome.FAILED, Outcome.ERROR]


def truncate(text: str, limit: int = MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " ...[truncated]"


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
