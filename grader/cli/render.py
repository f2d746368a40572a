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
        heading = "your output" + (f" ({'; '.join(notes)})" if notes else "")
        parts.append(Panel(Text(shown), title=Text(heading), title_align="left", border_style="dim"))
    t, prov = result.timings, result.provenance
    phases = (
        f"sandbox {t.sandbox_start_s:.2f} s, runtime {t.runtime_import_s:.2f} s, "
        f"tests {t.tests_s:.2f} s, performance {t.performance_s:.2f} s"
    )
    footer = f"{result.score:g}/{result.max_score:g} points · {t.total_s:.1f} s ({phases})"
    parts.append(Text(f"{footer} · {prov.sandbox} · version {prov.exercise_version}", style="dim"))
    console.print(Panel(Group(*parts), title=title, title_align="left", border_style=style.split()[-1]))  # type: ignore[arg-type]


def _tests(result: Verdict) -> Table:
    """Tests that need attention in full; passing ones as a count (the JSON has every test)."""
    table = Table(show_header=True, header_style="bold", expand=True, box=None)
    table.add_column("", width=5, no_wrap=True)
    table.add_column("test", ratio=3, overflow="fold")
    table.add_column("", width=6, no_wrap=True)
    table.add_column("message", ratio=5, overflow="fold")
    passed = [t for t in result.tests if t.outcome is Outcome.PASSED]
    for test in result.tests:
        if test.outcome is Outcome.PASSED:
            continue
        label, style = OUTCOME_STYLE[test.outcome]
        text = Text(test.message)
        if test.hint:
            text.append(f"\nhint: {test.hint}", style="cyan")
        table.add_row(Text(label, style=style), Text(test.name), Text(test.visibility, style="dim"), text)
    if passed:
        public = sum(t.visibility == "public" for t in passed)
        counts = f"{public} public, {len(passed) - public} hidden"
        table.add_row(
            Text("PASS", style="green"), Text(f"{len(passed)} tests passed"), "", Text(counts, style="dim")
        )
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
        verdict_text = Text("ok", style="green") if perf.passed else Text("too slow", style="yellow")
        if perf.kind == "exponent":
            figure, interval = f"n^{perf.ratio:.2f} (ref n^{perf.reference_value:.2f})", "-"
            limit = f"n^{perf.threshold:g}"
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
