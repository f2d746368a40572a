"""How the harness measures a submission against the reference, two runners side by side.

The unit of measurement is a block: one request that carries fresh inputs for k calls into a
runner and brings all k outputs back. CPU time (from the sandbox's cgroup, read from outside) and
wall time cover that whole exchange, from just before the request is sent until its reply has
fully arrived. Nothing narrower would do: the runner is the submission's process, and a
submission that rewired its own request handlers could otherwise do its work outside any window
(in a separate "fetch" step, say). Decoding the inputs and encoding the outputs are inside the
window too; they cost the same on both sides, and the reference's fixed cost of an empty block
is subtracted from both. Blocks grow until the reference spends `block_ms` of CPU in one.

The two blocks of a pair run in random order. Every output of every timed call is checked
against the reference's output for the same inputs, so memoising or returning stale buffers
cannot help.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.measurement import stats
from grader.remote import RemoteObject, RunnerClient
from grader.runner import messages
from grader.spec import PerformanceSpec
from grader.testing.calls import Call, Setup
from grader.verdict import DecidedBy, PerfKind, PerfResult

MakeCall = Callable[[np.random.Generator], Call]
SizedCall = Callable[[np.random.Generator, int], Call]
Check = Callable[[Any, Any], None]
Progress = Callable[[int, int], None]
MAX_BLOCK_CALLS = 4000
CALIBRATION_ROUNDS = 8
OVERHEAD_REPEATS = 5
MEMORY_REPEATS = 3
BUSY_PAUSES = (2.0, 5.0, 15.0, 40.0)  # seconds to wait before measuring again on a noisy machine
SCALING_REPEATS = 5
WARMUP_BLOCKS = 2
COARSE_CLOCK_TICKS = 25  # with a clock of 10 ms ticks, blocks of 250 ms keep the error near 4%


class PerformanceInconclusive(Exception):
    """The machine was too noisy to judge; never the submission's fault. Retry later."""


def _never(log_ratios: Sequence[float]) -> bool:
    return False


@dataclass(frozen=True)
class FixedPairs:
    """A time measurement made to calibrate a threshold (`grader.calibrate`), not to judge one:
    `pairs` pairs whatever they show, or fewer once `enough(log_ratios)` says more could not
    change what the calibration concludes. No early decision against the limit, no time budget
    and no second measurement on a noisy machine: the interval carries the noise. The result is
    still judged against the current limit, on the interval of all its pairs."""

    pairs: int
    enough: Callable[[Sequence[float]], bool] = _never


@dataclass
class Block:
    outputs: list[Any]
    cpu_ns: int
    wall_ns: int


def block(client: RunnerClient, calls: Sequence[Call], *, what: str = "a timed call") -> Block:
    """Run `calls` in one exchange with the runner, garbage collection off; timed from outside."""
    payload = [bind(client, c) for c in calls]
    reply, cpu_ns, wall_ns = client.timed_request(
        messages.Block(payload), timeout=client.limits.cpu_seconds, what=what
    )
    outputs = reply.value
    if not isinstance(outputs, list) or len(outputs) != len(calls):
        client.broke_protocol("the runner did not answer one output per timed call")
    return Block(outputs, cpu_ns, wall_ns)


def bind(client: RunnerClient, call: Call) -> tuple[RemoteObject | None, str, list[Any], dict[str, Any]]:
    """The call as this side makes it: each `Setup` replaced by this side's own object, made
    (untimed) the first time the measurement meets it."""

    def resolve(value: Any) -> Any:
        return make_setup(client, value) if isinstance(value, Setup) else value

    return (
        resolve(call.target),
        call.name,
        [resolve(a) for a in call.args],
        {k: resolve(v) for k, v in call.kwargs.items()},
    )


def make_setup(client: RunnerClient, setup: Setup) -> RemoteObject:
    """This side's own object for `setup`, made the first time the measurement meets it, after
    the Setups it is made from (its target and arguments). Without recursion: a chain of
    Setups may be far deeper than Python's recursion limit."""
    made = client.setups

    def own(value: Any) -> Any:
        return made[value] if isinstance(value, Setup) else value

    pending = [setup]
    while pending:
        top = pending[-1]
        if top in made:
            pending.pop()
            continue
        missing = [need for need in top.needs() if need not in made]
        if missing:
            pending.extend(missing)
            continue
        pending.pop()
        made[top] = client.keep(
            top.name,
            [own(a) for a in top.args],
            {k: own(v) for k, v in top.kwargs.items()},
            pick=top.index,
            target=None if top.target is None else made[top.target],
        )
    return made[setup]


def overhead_ns(reference: RunnerClient) -> int:
    """The fixed CPU cost of an exchange, measured on the reference's runner (trusted code: a
    submission could inflate its own)."""
    return int(
        np.median([block(reference, [], what="measuring overhead").cpu_ns for _ in range(OVERHEAD_REPEATS)])
    )


@dataclass
class Side:
    client: RunnerClient
    cpu_ns: list[int] = field(default_factory=list)
    wall_ns: list[int] = field(default_factory=list)


def _check_all(check: Check, actual: list[Any], expected: list[Any]) -> None:
    for a, e in zip(actual, expected, strict=True):
        check(a, e)


def _pair(
    sides: dict[str, Side], calls: list[Call], check: Check, order: Sequence[str], overhead: int
) -> dict[str, int]:
    """One pair: a block on each side in `order`, outputs checked; net CPU ns per side."""
    blocks = {label: block(sides[label].client, calls) for label in order}
    _check_all(check, blocks["submission"].outputs, blocks["reference"].outputs)
    for label, measured in blocks.items():
        sides[label].wall_ns.append(max(measured.wall_ns, 1))
    return {label: max(measured.cpu_ns - overhead, 1) for label, measured in blocks.items()}


def judged(
    name: str, spec: PerformanceSpec, ratio: float, *, passed: bool | None = None, **figures: Any
) -> PerfResult:
    """The one place a PerfResult is made: `ratio` (an exponent when `spec` has sizes) judged
    against the spec's limit, unless a decision (`passed`) was reached otherwise; `figures` are
    the rest of PerfResult's fields."""
    return PerfResult(
        name=name,
        metric=spec.metric,
        kind=PerfKind.EXPONENT if spec.scaling else PerfKind.RATIO,
        ratio=ratio,
        threshold=spec.threshold,
        tolerance=spec.tolerance,
        passed=ratio <= spec.limit if passed is None else passed,
        **figures,
    )


def time_ratio(
    name: str,
    student: RunnerClient,
    reference: RunnerClient,
    make_call: MakeCall,
    spec: PerformanceSpec,
    check: Check,
    progress: Progress | None = None,
    busy: Callable[[float], None] | None = None,
    fixed: FixedPairs | None = None,
) -> PerfResult:
    """Measure CPU time of the submission over the reference. When the machine is too noisy to
    judge, wait for it to calm down (BUSY_PAUSES, saying so through `busy`) and measure again.
    With `fixed`, measure as many pairs as it says, once (see FixedPairs)."""
    if fixed is not None:
        measured = _time_ratio_once(name, student, reference, make_call, spec, check, progress, fixed)
        assert measured is not None  # a fixed measurement is never inconclusive
        return measured
    for pause in (*BUSY_PAUSES, None):
        result = _time_ratio_once(name, student, reference, make_call, spec, check, progress)
        if result is not None:
            return result
        if pause is None:
            break
        if busy is not None:
            busy(pause)
        time.sleep(pause)
    raise PerformanceInconclusive(
        f"{name}: the reference's own timings varied by more than {stats.MAX_DISPERSION:.0%} in "
        f"{len(BUSY_PAUSES) + 1} measurements over {sum(BUSY_PAUSES):g} s; "
        "the machine is too busy to judge speed"
    )


def _time_ratio_once(
    name: str,
    student: RunnerClient,
    reference: RunnerClient,
    make_call: MakeCall,
    spec: PerformanceSpec,
    check: Check,
    progress: Progress | None,
    fixed: FixedPairs | None = None,
) -> PerfResult | None:
    seed = secrets.randbits(32)
    rng, order = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    sides = {"submission": Side(student), "reference": Side(reference)}
    overhead = overhead_ns(reference)
    size = _calibrate(sides, make_call, rng, check, spec, overhead)
    started = time.monotonic()
    points = stats.checkpoints(spec.min_pairs, spec.max_pairs)
    logs: list[float] = []
    while True:
        labels = [str(label) for label in order.permutation(list(sides))]
        cpu = _pair(sides, [make_call(rng) for _ in range(size)], check, labels, overhead)
        for label, value in cpu.items():
            sides[label].cpu_ns.append(value)
        logs.append(math.log(cpu["submission"] / cpu["reference"]))
        n = len(logs)
        if progress is not None:
            progress(n, spec.max_pairs if fixed is None else fixed.pairs)
        if fixed is not None:
            if n >= fixed.pairs or fixed.enough(logs):
                decision = stats.decide(logs, spec.limit, final=True, seed=seed)
                break
            continue
        stop = _stop(logs, spec, points, started, seed)
        if stop is not None:
            decision = stop
            break
    if fixed is None and stats.inconclusive(decision, spec.limit, sides["reference"].cpu_ns):
        return None
    sub, ref = sides["submission"], sides["reference"]
    walls = [math.log(s / r) for s, r in zip(sub.wall_ns, ref.wall_ns, strict=True)]
    return judged(
        name,
        spec,
        decision.estimate.ratio,
        **_decided(decision),
        submission_value=float(np.median(sub.cpu_ns)) / size / 1e9,
        reference_value=float(np.median(ref.cpu_ns)) / size / 1e9,
        unit="s",
        pairs=len(logs),
        source=student.process.measured_by,
        wall_ratio=math.exp(float(np.median(walls))),
        samples=[[s / 1e9, r / 1e9] for s, r in zip(sub.cpu_ns, ref.cpu_ns, strict=True)],
    )


def _stop(
    logs: list[float], spec: PerformanceSpec, points: list[int], started: float, seed: int
) -> stats.Decision | None:
    """The decision, once the pairs so far settle the check (by the interval at a checkpoint, a
    clear cut early on) or no more may be measured (`max_pairs`, `budget_seconds`); else None."""
    n = len(logs)
    out_of_time = time.monotonic() - started > spec.budget_seconds and n >= stats.EARLY_PAIRS
    final = n >= spec.max_pairs or out_of_time
    if n in points or final or n in (stats.EARLY_PAIRS, stats.CLEAR_CUT_PAIRS):
        decision = stats.decide(logs, spec.limit, final=final, seed=seed)
        if decision.by == "clear-cut" or (n in points and decision.state != "undecided") or final:
            return decision
    return None


def _decided(decision: stats.Decision) -> dict[str, Any]:
    """What a sequential decision puts in a PerfResult."""
    return {
        "passed": decision.state == "pass",
        "decided_by": DecidedBy(decision.by),
        "ci_low": decision.estimate.ratio_low,
        "ci_high": decision.estimate.ratio_high,
    }


def _calibrate(
    sides: dict[str, Side],
    make_call: MakeCall,
    rng: np.random.Generator,
    check: Check,
    spec: PerformanceSpec,
    overhead: int,
) -> int:
    """Grow the block until the reference spends `block_ms` of CPU in one, and warm the
    reference's runner up on full blocks (a runner just started is slower at first). The
    submission's runner, warm from the correctness tests, only answers one checked call here:
    a slow submission should not pay for calibration."""
    _pair(sides, [make_call(rng)], check, list(sides), overhead)
    reference = sides["reference"].client
    target = max(spec.block_ms * 1e6, COARSE_CLOCK_TICKS * reference.process.cpu_resolution_ns)
    size = 1
    for _ in range(CALIBRATION_ROUNDS):
        net = max(block(reference, [make_call(rng) for _ in range(size)]).cpu_ns - overhead, 1)
        if net >= target or size >= MAX_BLOCK_CALLS:
            break
        size = min(MAX_BLOCK_CALLS, max(2 * size, math.ceil(size * target / net * 1.2)))
    for _ in range(WARMUP_BLOCKS):
        block(reference, [make_call(rng) for _ in range(size)])
    for side in sides.values():
        side.wall_ns.clear()
    return size


def memory_ratio(
    name: str,
    student: RunnerClient,
    reference: RunnerClient,
    make_call: MakeCall,
    spec: PerformanceSpec,
    check: Check,
) -> PerfResult:
    """Peak memory while one call's exchange runs (inputs in, output out), from outside, above
    the runner's usage before the submission was imported (so memory kept at import, or cached
    between calls, counts too); median of a few.

    Before each call the runner collects garbage and trims its heap, so that memory freed by
    earlier calls is not silently reused and hidden from the measurement."""
    rng = np.random.default_rng(secrets.randbits(32))
    peaks: dict[str, list[int]] = {"submission": [], "reference": []}
    clients = {"submission": student, "reference": reference}
    sources: set[str] = set()
    for _ in range(MEMORY_REPEATS):
        call = make_call(rng)
        outputs = {}
        for label, client in clients.items():
            client.request(messages.Settle(), timeout=client.limits.cpu_seconds, what="settling memory")
            peak = client.process.watch_memory_peak()
            sources.add(peak.source)
            outputs[label] = block(client, [call], what="a measured call").outputs[0]
            peaks[label].append(peak.above_baseline())
        check(outputs["submission"], outputs["reference"])
    sub, ref = float(np.median(peaks["submission"])), float(np.median(peaks["reference"]))
    ratio = sub / max(ref, 1024 * 1024)  # below a MiB the reference's figure is allocator noise
    return judged(
        name,
        spec,
        ratio,
        decided_by=DecidedBy.MEDIAN,
        submission_value=sub,
        reference_value=ref,
        unit="bytes",
        pairs=MEMORY_REPEATS,
        source="+".join(sorted(sources)),
        samples=[[float(s), float(r)] for s, r in zip(peaks["submission"], peaks["reference"], strict=True)],
    )


PROBE_FIGURES = {
    "allocation": ("max_alloc_bytes", "bytes"),
    "flops": ("flops", "flop"),
    "ops": ("ops", "ops"),
    "traffic": ("traffic_bytes", "bytes"),
    "dram": ("dram_bytes", "bytes"),
    "launches": ("launches", "launches"),
}
KERNEL_FIGURES = frozenset({"traffic", "dram", "launches"})  # counted by Triton's interpreter only


def measurable_on(metric: str, device: str) -> bool:
    """Whether a check of `metric` can be measured where the runner computes: device time needs
    a GPU; kernel figures need Triton's interpreter, which runs where there is none."""
    on_gpu = device.startswith("cuda")
    if metric == "device_time":
        return on_gpu
    return not (metric in KERNEL_FIGURES and on_gpu)


def probe(client: RunnerClient, call: Call) -> tuple[Any, dict[str, Any]]:
    """Run one call under the in-runner probe: its output, and what it allocated and computed."""
    target, attr, args, kwargs = bind(client, call)
    request = messages.Probe(target.ident if target is not None else 0, attr, args, kwargs)
    reply = client.request(request, timeout=client.limits.cpu_seconds, what=f"probing {call.name}")
    found = reply.stats if isinstance(reply.stats, dict) else {}
    return reply.value, found


def probe_ratio(
    name: str,
    student: RunnerClient,
    reference: RunnerClient,
    make_call: MakeCall,
    spec: PerformanceSpec,
    check: Check,
) -> PerfResult:
    """Allocation, FLOP or op count of one call against the reference's (runner-reported)."""
    key, unit = PROBE_FIGURES[spec.metric]
    call = make_call(np.random.default_rng(secrets.randbits(32)))
    out_student, found = probe(student, call)
    out_reference, expected = probe(reference, call)
    check(out_student, out_reference)
    sub, ref = _number(found.get(key)), _number(expected.get(key))
    ratio = sub / max(ref, 1.0)
    return judged(
        name,
        spec,
        ratio,
        decided_by=DecidedBy.SINGLE,
        submission_value=sub,
        reference_value=ref,
        unit=unit,
        pairs=1,
        runner_reported=True,
        source="probe",
    )


def device_time_ratio(
    name: str,
    student: RunnerClient,
    reference: RunnerClient,
    make_call: MakeCall,
    spec: PerformanceSpec,
    check: Check,
    progress: Progress | None = None,
) -> PerfResult:
    """Time on the device of the submission over the reference, one call at a time.

    Each pair makes a fresh call and runs it on both sides in random order; the runner flushes
    the L2 cache, synchronises the device, calls, and synchronises the whole device again, with
    the clock and synchronisation it took before the submission was imported. Every output of
    every timed call is checked against the reference's, so caching outputs, leaving work on
    another stream or answering NaN cannot help. Decided like CPU time: a bootstrap interval on
    the median ratio, checked at a few points between `min_pairs` and `max_pairs`."""
    seed = secrets.randbits(32)
    rng, order = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    clients = {"submission": student, "reference": reference}
    for client in clients.values():  # warm up: compiling the kernels is not timed
        device_times(client, [make_call(rng)])
    times: dict[str, list[int]] = {"submission": [], "reference": []}
    points = stats.checkpoints(spec.min_pairs, spec.max_pairs)
    started = time.monotonic()
    logs: list[float] = []
    while True:
        call = make_call(rng)
        labels = [str(label) for label in order.permutation(list(clients))]
        measured = {label: device_times(clients[label], [call]) for label in labels}
        check(measured["submission"][0][0], measured["reference"][0][0])
        for label, (_, ns) in measured.items():
            times[label].append(max(ns[0], 1))
        logs.append(math.log(times["submission"][-1] / times["reference"][-1]))
        n = len(logs)
        if progress is not None:
            progress(n, spec.max_pairs)
        decision = _stop(logs, spec, points, started, seed)
        if decision is not None:
            break
    sub, ref = times["submission"], times["reference"]
    return judged(
        name,
        spec,
        decision.estimate.ratio,
        **_decided(decision),
        submission_value=float(np.median(sub)) / 1e9,
        reference_value=float(np.median(ref)) / 1e9,
        unit="s",
        pairs=len(logs),
        source="device",
        samples=[[s / 1e9, r / 1e9] for s, r in zip(sub, ref, strict=True)],
    )


def device_times(client: RunnerClient, calls: Sequence[Call]) -> tuple[list[Any], list[int]]:
    """Run `calls` one at a time on the runner's device: their outputs and nanoseconds each."""
    bound = [bind(client, call) for call in calls]
    request = messages.DeviceTimes([(t, attr, args, kwargs) for t, attr, args, kwargs in bound])
    reply = client.request(request, timeout=client.limits.cpu_seconds, what="a timed call")
    outputs = reply.outputs if isinstance(reply.outputs, list) else []
    times = reply.times_ns if isinstance(reply.times_ns, list) else []
    if (
        len(outputs) != len(calls)
        or len(times) != len(calls)
        or not all(type(t) is int and t >= 0 for t in times)
    ):
        client.broke_protocol("the runner did not answer one output and one time per timed call")
    return outputs, times


def _number(value: Any) -> float:
    """A probe figure; anything that is not a finite, non-negative number counts as infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return math.inf
    return float(value)


def growth_exponent(sizes: Sequence[int], values: Sequence[float]) -> float:
    """The least-squares slope of log(value) against log(size): value ~ size ** exponent."""
    x = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-12))
    return float(np.polyfit(x, y, 1)[0])


def scaling(
    name: str,
    student: RunnerClient,
    reference: RunnerClient,
    make_call: SizedCall,
    spec: PerformanceSpec,
    check: Check,
) -> PerfResult:
    """How the metric grows with the size: its growth exponent over `spec.sizes`, for the
    submission (judged) and the reference (shown for comparison)."""
    rng = np.random.default_rng(secrets.randbits(32))
    figures: dict[str, list[float]] = {"submission": [], "reference": []}
    overhead = overhead_ns(reference) if spec.metric == "time" else 0
    for n in spec.sizes:
        call = make_call(rng, n)
        for label, value in _figure(spec.metric, student, reference, call, check, overhead).items():
            figures[label].append(value)
    exponent = growth_exponent(spec.sizes, figures["submission"])
    reference_exponent = growth_exponent(spec.sizes, figures["reference"])
    probed = spec.metric in PROBE_FIGURES
    return judged(
        name,
        spec,
        exponent,
        decided_by=DecidedBy.FIT,
        submission_value=exponent,
        reference_value=reference_exponent,
        unit="exponent",
        pairs=len(spec.sizes),
        runner_reported=probed,
        source="probe" if probed else student.process.measured_by,
        samples=[
            [float(n), s, r]
            for n, s, r in zip(spec.sizes, figures["submission"], figures["reference"], strict=True)
        ],
    )


def _figure(
    metric: str, student: RunnerClient, reference: RunnerClient, call: Call, check: Check, overhead: int
) -> dict[str, float]:
    """One call's figure on both sides: probe counts, or median CPU seconds over a few blocks."""
    if metric in PROBE_FIGURES:
        key = PROBE_FIGURES[metric][0]
        out_student, found = probe(student, call)
        out_reference, expected = probe(reference, call)
        check(out_student, out_reference)
        return {"submission": _number(found.get(key)), "reference": _number(expected.get(key))}
    times: dict[str, list[int]] = {"submission": [], "reference": []}
    for _ in range(SCALING_REPEATS):
        measured = {
            label: block(client, [call])
            for label, client in (("submission", student), ("reference", reference))
        }
        check(measured["submission"].outputs[0], measured["reference"].outputs[0])
        for label, result in measured.items():
            times[label].append(max(result.cpu_ns - overhead, 1))
    return {label: float(np.median(values)) / 1e9 for label, values in times.items()}
