"""How verdicts, catalogs and validation results look in a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from grader.catalog import Catalog
from grader.verdict import Outcome, Status, Verdict, describe_performance

STATUS_STYLE = {
    Status.PASSED: "bold green",
    Status.TOO_SLOW: "bold yellow",
    Status.FAILED: "bold red",
    Status.SYSTEM_ERROR: "bold magenta",
}
OUTCOME_STYLE = {
    Outcome.PASSED: ("PASS", "green"),
    Outcome.FAILED: ("FAIL", "red"),
    Outcome.ERROR: ("ERROR", "red"),
    Outcome.TOO_SLOW: ("SLOW", "yellow"),
    Outcome.SKIPPED: ("SKIP", "dim"),
}

if TYPE_CHECKING:  # validating imports the engine, which most commands never need
    from grader.calibrate import Calibration, CheckCalibration, Measured
    from grader.validate import Check


def verdict(console: Console, result: Verdict) -> None:
    style = STATUS_STYLE.get(result.status, "bold red")
    title = Text.assemble((result.status.label, style), "  ", (result.summary, ""))
    parts: list[object] = []
    if result.message and result.message != result.summary:
        parts.append(Text(result.message))
    if result.tests:
        parts.append(_tests(result))
    if result.performance:
        parts.append(_performance(result))
    if result.output or result.output_withheld:
        shown = result.output[:2000]
        notes = []
        if len(result.output) > len(shown) or result.output_truncated:
            notes.append(f"the first {len(shown)} characters")
        if result.output_withheld:
            notes.append("what your code printed during the hidden tests is not shown")
        if shown:
            heading = "your output" + (f" ({'; '.join(notes)})" if notes else "")
            parts.append(Panel(Text(shown), title=Text(heading), title_align="left", border_style="dim"))
        else:  # nothing to show: a line, not an empty box under a heading too long to fit
            parts.append(Text(f"your output: {'; '.join(notes)}", style="dim"))
    t, prov = result.timings, result.provenance
    phases = (
        f"sandbox {t.sandbox_start_s:.2f} s, runtime {t.runtime_import_s:.2f} s, "
        f"tests {t.tests_s:.2f} s, performance {t.performance_s:.2f} s"
    )
    footer = f"{result.score:g}/{result.max_score:g} points · {t.total_s:.1f} s ({phases})"
    parts.append(Text(f"{footer} · {prov.sandbox} · version {prov.exercise_version}", style="dim"))
    console.print(Panel(Group(*parts), title=title, title_align="left", border_style=style.split()[-1]))  # type: ignore[arg-type]


def _tests(result: Verdict) -> Table:
    """Failing tests grouped by the mistake they share, the likeliest root cause first, each with
    the case to look at first; passing and skipped ones as counts (the JSON has every test)."""
    table = Table(show_header=True, header_style="bold", expand=True, box=None)
    table.add_column("", width=8, no_wrap=True)
    table.add_column("mistake", ratio=1, overflow="fold")
    table.add_column("tests", width=10, no_wrap=True, justify="right")
    mistakes = result.mistakes
    for number, mistake in enumerate(mistakes, 1):
        label, style = OUTCOME_STYLE[mistake.outcome]
        text = Text()
        if number == 1 and len(mistakes) > 1:
            text.append("fix this first: ", style="bold")
        if mistake.kind == "hint":
            text.append("hint: ", style="cyan")
            text.append(mistake.title, style="bold cyan")
        else:
            text.append(mistake.title, style="bold")
        example = result.test(mistake.example)
        if example is not None:
            text.append("\n" + ("start with " if len(mistake.tests) > 1 else ""), style="dim")
            text.append(example.name)
            text.append(f" ({example.visibility})", style="dim")
            message = example.message
            if mistake.kind == "error":  # its first line is the title
                message = "\n".join(message.splitlines()[1:])
            if message:
                text.append("\n" + message)
            if example.hint and mistake.kind != "hint":
                text.append(f"\nhint: {example.hint}", style="cyan")
        others = mistake.others()
        if others:
            text.append(f"\nalso: {others}", style="dim")
        public = f"\n{mistake.public} public" if mistake.public else ""
        table.add_row(
            Text(f"{number} {label}", style=style), text, Text(f"{len(mistake.tests)}{public}", style="dim")
        )
    counts = result.counts
    if counts.passed or counts.not_run:
        shown = sum(t.visibility == "public" for t in result.tests if t.outcome is Outcome.PASSED)
        line = (
            f"{counts.passed} of {counts.total} tests passed ({shown} public, {counts.passed - shown} hidden)"
        )
        if counts.not_run:
            line += f"; {counts.not_run} not run"
        table.add_row(Text("PASS", style="green"), Text(line), Text(str(counts.passed), style="dim"))
    return table


def _performance(result: Verdict) -> Table:
    table = Table(
        show_header=True,
        header_style="bold",
        expand=True,
        box=None,
        title="performance",
        title_justify="left",
    )
    for column in ("check", "metric", "yours / reference", "95% interval", "limit", "pairs", "by", ""):
        table.add_column(column)
    for perf in result.performance:
        source = f"{perf.metric} ({perf.source}{', runner-reported' if perf.runner_reported else ''})"
        verdict_text = Text("ok", style="green") if perf.passed else Text("over limit", style="yellow")
        if perf.kind == "exponent":
            figure, interval = f"n^{perf.ratio:.2f} (ref n^{perf.reference_value:.2f})", "-"
            limit = f"n^{perf.threshold + perf.tolerance:g}"  # the tolerance of an exponent is additive
        else:
            figure, limit = f"{perf.ratio:.2f}x", f"{perf.threshold:g}x"
            has_ci = perf.ci_low is not None and perf.ci_high is not None
            interval = f"{perf.ci_low:.2f}-{perf.ci_high:.2f}x" if has_ci else "-"
        table.add_row(
            Text(perf.name), source, figure, interval, limit, str(perf.pairs), perf.decided_by, verdict_text
        )
    failing = [describe_performance(p) for p in result.performance if not p.passed]
    if failing:
        table.caption = Text("\n".join(failing))
    return table


def catalog(console: Console, cat: Catalog) -> None:
    components = cat.components()
    shape = "one connected curriculum" if len(components) == 1 else f"{len(components)} separate groups"
    console.print(Text(f"{len(cat.order)} concepts in {len(cat.tracks)} tracks, {shape}", style="bold"))
    for track, exercises in cat.by_track():
        table = Table(
            title=Text.assemble(track.title, (f"  ({track.id})", "dim")), title_justify="left", expand=True
        )
        for column in ("concept", "title", "level", "min", "tier", "needs", "prerequisites"):
            table.add_column(column)
        for ex in exercises:
            spec = ex.spec
            table.add_row(
                Text(spec.id),
                Text(spec.title),
                str(spec.level),
                str(spec.minutes),
                spec.tier,
                spec.resources,
                Text(", ".join(spec.prerequisites) or "-"),
            )
        if track.summary:
            table.caption = Text(track.summary)
        console.print(table)


def check(console: Console, item: Check) -> None:
    mark = Text("ok  ", style="green") if item.ok else Text("FAIL", style="bold red")
    line = Text.assemble(
        mark,
        f" {item.exercise}: {item.subject} ",
        ("expected ", "dim"),
        item.expected,
        (", got ", "dim"),
        item.got,
        (f"  {item.seconds:.1f} s", "dim"),
    )
    if item.detail:
        line.append(f"\n      {item.detail}", style="dim" if item.ok else "red")
    console.print(line)


def calibration(console: Console, result: Calibration) -> None:
    """Each time check's measurements, its proposed threshold (or why there is none) and what the
    current threshold does; then the rule."""
    for item in result.checks:
        console.print(_calibration_table(result, item))
        if item.proposed is not None:
            console.print(Text(item.summary, style="green"))
        else:
            console.print(Text(item.summary, style="yellow" if not item.slow else "red"))
        if item.current:
            styles = {None: "dim", True: "green", False: "red"}
            console.print(Text(item.current, style=styles[item.current_separates]))
        console.print()
    console.print(Text(f"rule: {result.rule}", style="dim"))


def _calibration_table(result: Calibration, item: CheckCalibration) -> Table:
    title = Text.assemble(
        (f"{result.exercise}: {item.check}", "bold"),
        (
            f"  time; threshold {item.threshold:g} (limit {item.limit:.2f}x); "
            f"up to {item.pairs} pairs each; {result.sandbox}",
            "dim",
        ),
    )
    table = Table(title=title, title_justify="left", box=None, header_style="bold", show_edge=False)
    for column in ("measured", "ratio (median)", "95% interval", "pairs", "reference per call", ""):
        table.add_column(column)
    table.add_row(*_measured_row(item.reference, "reference vs itself"))
    for measured in item.slow:
        table.add_row(*_measured_row(measured, measured.subject))
    for subject in item.left_out:
        left = Text("caught by other checks' tests: left out", style="dim")
        table.add_row(Text(subject, style="dim"), "", "", "", "", left)
    return table


def _measured_row(measured: Measured, label: str) -> list[Text | str]:
    if not measured.measured:
        return [Text(label), "-", "-", str(measured.pairs), "-", Text(measured.error, style="red")]
    ratio, low, high = measured.ratio or 0.0, measured.low or 0.0, measured.high or 0.0
    call = f"{measured.call_s * 1e3:.3g} ms" if measured.call_s else "-"
    return [Text(label), f"{ratio:.2f}x", f"{low:.2f}-{high:.2f}x", str(measured.pairs), call, ""]
