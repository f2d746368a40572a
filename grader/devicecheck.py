"""A GPU host's check in one run, for `scripts/gpu-check.sh`: what the host has, the GPU tests,
every GPU exercise's reference and wrong variants graded on the device, and the kernels timed.

It is made for a borrowed GPU with a small time budget: every step has a deadline, gradings run
several at a time (CPU-bound work; the device is shared) except the references of timed
exercises, which run alone on the device so that their timings are not disturbed, and the report
is rewritten after every step, so that a run cut short still leaves what it found.

With `--dry-run` (no GPU needed) the same steps run on the CPU: kernels in Triton's interpreter,
speed checks skipped, GPU tests skipped; CI runs it that way.

    python -m grader.devicecheck [--dry-run] [--report PATH] [--exercises SLUG ...] [--budget S]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPORT = ROOT / "var" / "gpu-check" / "report.md"
DEFAULT_BUDGET = 420.0  # seconds: the whole check stays under 8 minutes, with room to spare
PYTEST_SECONDS = 150.0
PARALLEL = 6  # gradings at once besides the timed references


@dataclasses.dataclass
class Grading:
    exercise: str
    subject: str  # "reference" or "wrong/<name>"
    expected: str
    status: str = "not run"
    seconds: float = 0.0
    summary: str = ""
    timings: list[str] = dataclasses.field(default_factory=list)  # device-time and kernel figures

    @property
    def ok(self) -> bool:
        if self.status in ("not run", "error"):
            return False
        if self.subject == "reference":
            return self.status == "passed"
        return self.status != "passed"  # a wrong variant must not pass, whatever else it gets


@dataclasses.dataclass
class Report:
    device: str
    dry_run: bool
    started: float = dataclasses.field(default_factory=time.monotonic)
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    pytest: str = "not run"
    pytest_ok: bool = False
    gradings: list[Grading] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.pytest_ok and bool(self.gradings) and all(g.ok for g in self.gradings)

    def markdown(self) -> str:
        lines = [
            "# GPU check" + (" (dry run on the CPU)" if self.dry_run else ""),
            "",
            f"Device: `{self.device}`. Took {time.monotonic() - self.started:.0f} s. "
            f"Result: **{'pass' if self.ok else 'FAIL'}**.",
            "",
            "## Environment",
            "",
        ]
        lines += [f"- {key}: {value}" for key, value in self.environment.items()]
        lines += [
            "",
            "## GPU tests (`pytest -m gpu`)",
            "",
            f"{self.pytest}",
            "",
            "## Gradings on the device",
            "",
        ]
        lines += ["| exercise | graded | expected | got | s | figures |", "|---|---|---|---|---|---|"]
        for g in self.gradings:
            mark = "" if g.ok else " ✗"
            figures = "; ".join(g.timings) or "-"
            cells = [g.exercise, g.subject, g.expected, f"{g.status}{mark}", f"{g.seconds:.0f}", figures]
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def environment(device: str) -> dict[str, str]:
    """What the host has: Python, torch and its CUDA, Triton, the GPU and its driver, sandboxes."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        import torch

        found["torch"] = f"{torch.__version__} (CUDA {torch.version.cuda or 'none'})"
        if device.startswith("cuda") and torch.cuda.is_available():
            index = int(device.partition(":")[2] or 0)
            major, minor = torch.cuda.get_device_capability(index)
            found["gpu"] = f"{torch.cuda.get_device_name(index)} (compute capability {major}.{minor})"
        else:
            found["gpu"] = "none visible to torch"
    except Exception as exc:  # noqa: BLE001 - a report, whatever is broken
        found["torch"] = f"unusable: {exc}"
    try:
        import triton

        found["triton"] = triton.__version__
    except Exception as exc:  # noqa: BLE001
        found["triton"] = f"unusable: {exc}"
    smi = shutil.which("nvidia-smi")
    if smi:
        done = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        found["nvidia-smi"] = done.stdout.strip().replace("\n", "; ") or done.stderr.strip()[:200]
    else:
        found["nvidia-smi"] = "not installed"
    found["sandbox"] = backend_name()
    return found


def backend_name() -> str:
    """bubblewrap where it works here, else `none` (the check grades the project's own code)."""
    from sandbox import SandboxUnavailable, get_backend

    backend = get_backend("bwrap")
    try:
        backend.check()
        return "bwrap"
    except SandboxUnavailable:
        return "none"
    finally:
        backend.close()


def run_pytest(report: Report, budget: float) -> None:
    argv = [sys.executable, "-m", "pytest", "tests/gpu", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=max(budget, 10.0), check=False
        )
    except subprocess.TimeoutExpired:
        report.pytest = f"stopped after {budget:.0f} s"
        return
    tail = [line for line in done.stdout.strip().splitlines() if line.strip()][-6:]
    report.pytest = "```\n" + "\n".join(tail) + "\n```"
    report.pytest_ok = done.returncode in (0, 5) and " failed" not in (tail[-1] if tail else "")


def grade_one(slug: str, subject: str, device: str, backend: str) -> dict[str, Any]:
    """Grade one file of exercise `slug` on `device` (in a process of its own)."""
    from grader.catalog import load_catalog
    from grader.engine import grade
    from sandbox import get_backend

    catalog = load_catalog(ROOT / "exercises", ROOT / "solutions")
    exercise = catalog.get(slug)
    if subject == "reference":
        path = exercise.solution
    else:
        path = next(w.path for w in exercise.wrong if f"wrong/{w.name}" == subject)
    sandbox = get_backend(backend)
    started = time.monotonic()
    try:
        verdict = grade(exercise, path.read_bytes(), sandbox, device=device, seed=0, filename=path.name)
    finally:
        sandbox.close()
    figures = []
    for perf in verdict.performance:
        if perf.metric == "device_time":
            figures.append(
                f"{perf.name}: {perf.ratio:.2f}x the reference ({perf.submission_value * 1e3:.3f} ms against "
                f"{perf.reference_value * 1e3:.3f} ms, {perf.pairs} pairs)"
            )
        else:
            figures.append(f"{perf.name}: {perf.ratio:.2f}x ({perf.metric})")
    return {
        "status": verdict.status.value,
        "summary": verdict.summary,
        "seconds": time.monotonic() - started,
        "timings": figures,
    }


def plan(slugs: list[str] | None) -> list[Grading]:
    from grader.catalog import load_catalog

    catalog = load_catalog(ROOT / "exercises", ROOT / "solutions")
    chosen = [catalog.get(s) for s in slugs] if slugs else [e for e in catalog if e.spec.resources == "gpu"]
    gradings = []
    for exercise in chosen:
        gradings.append(Grading(exercise.slug, "reference", "passed"))
        gradings += [Grading(exercise.slug, f"wrong/{w.name}", w.expect.value) for w in exercise.wrong]
    return gradings


def run_gradings(report: Report, deadline: float, write: Any) -> None:
    """Wrong variants several at a time, then the references one by one, alone on the device."""
    backend = report.environment.get("sandbox", "none")
    wrongs = [g for g in report.gradings if g.subject != "reference"]
    references = [g for g in report.gradings if g.subject == "reference"]
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(PARALLEL, (os.cpu_count() or 2) - 1))
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(grade_one, g.exercise, g.subject, report.device, backend): g for g in wrongs}
        try:
            for future in concurrent.futures.as_completed(
                futures, timeout=max(deadline - time.monotonic(), 1)
            ):
                _record(futures[future], future)
                write()
        except concurrent.futures.TimeoutError:
            report.notes.append("the budget ran out before every wrong variant was graded")
            for future in futures:
                future.cancel()
    for grading in references:
        if time.monotonic() > deadline:
            report.notes.append(f"the budget ran out before {grading.exercise}'s reference was graded")
            break
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as alone:
            _record(grading, alone.submit(grade_one, grading.exercise, "reference", report.device, backend))
        write()


def _record(grading: Grading, future: concurrent.futures.Future[dict[str, Any]]) -> None:
    try:
        found = future.result()
    except Exception as exc:  # noqa: BLE001 - one grading's failure is a finding, not the end
        grading.status, grading.summary = "error", f"{type(exc).__name__}: {exc}"[:300]
        return
    grading.status = found["status"]
    grading.summary = found["summary"]
    grading.seconds = found["seconds"]
    grading.timings = found["timings"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gpu-check", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--dry-run", action="store_true", help="no GPU: run every step on the CPU")
    parser.add_argument("--device", default="cuda:0", help="the GPU to check (default cuda:0)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="where to write the report")
    parser.add_argument("--exercises", nargs="*", help="only these exercises (default: every GPU exercise)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="seconds for the whole check")
    args = parser.parse_args(argv)
    device = "cpu" if args.dry_run else args.device
    report = Report(device=device, dry_run=args.dry_run)
    deadline = report.started + args.budget
    args.report.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        partial = args.report.with_suffix(".tmp")
        partial.write_text(report.markdown(), encoding="utf-8")
        partial.replace(args.report)

    def say(message: str) -> None:
        print(f"==> {message} ({time.monotonic() - report.started:.0f} s)", file=sys.stderr, flush=True)

    say("environment")
    report.environment = environment(device)
    if not args.dry_run and "none visible" in report.environment.get("gpu", ""):
        report.notes.append(f"no GPU visible to torch: nothing to check on {device} (try --dry-run)")
        write()
        print(report.markdown())
        return 2
    try:
        report.gradings = plan(args.exercises)
    except KeyError as exc:  # UnknownExercise says which, and what is close
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write()
    say("GPU tests")
    run_pytest(report, min(PYTEST_SECONDS, deadline - time.monotonic()))
    write()
    say(f"{len(report.gradings)} gradings on {device}")
    run_gradings(report, deadline, write)
    write()
    say(f"report: {args.report}")
    print(report.markdown())
    (args.report.with_suffix(".json")).write_text(
        json.dumps({"ok": report.ok, "gradings": [dataclasses.asdict(g) for g in report.gradings]}, indent=1)
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
