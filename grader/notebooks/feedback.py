"""Feedback for a graded notebook: the student's notebook with the verdict written into it (a
summary at the top, each public test's result under its cell), as a notebook or as HTML.

Everything the submission could have influenced (messages, output) is shown as preformatted
text, never as Markdown or HTML, and the HTML is sanitised: an instructor opening a student's
feedback runs none of the student's markup.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from grader.notebooks.extract import nbgrader_meta
from grader.verdict import Outcome, TestResult, Verdict, describe_performance

MARK = {
    Outcome.PASSED: "✅ passed",
    Outcome.FAILED: "❌ failed",
    Outcome.ERROR: "❌ error",
    Outcome.TOO_SLOW: "🐢 over a performance limit",
    Outcome.SKIPPED: "⏭ skipped",
}


def feedback_notebook(notebook: Any, verdict: Verdict) -> Any:
    """A copy of `notebook` with the verdict in it; the student's outputs are cleared (they are
    not what was graded)."""
    import nbformat.v4 as v4

    from grader.notebooks.release import mark_cell

    result = copy.deepcopy(notebook)
    by_name: dict[str, list[TestResult]] = {}
    for test in verdict.tests:  # parametrised cases under their test's cell
        by_name.setdefault(test.function, []).append(test)
    summary = v4.new_markdown_cell(summary_markdown(verdict, notebook))
    cells = [mark_cell(summary, "grader_feedback", locked=True)]
    for cell in result.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cells.append(cell)
        grade_id = nbgrader_meta(cell).get("grade_id")
        if isinstance(grade_id, str) and grade_id in by_name:
            cells.append(v4.new_markdown_cell(_tests_markdown(by_name.pop(grade_id))))
    result.cells = cells
    return result


def summary_markdown(verdict: Verdict, notebook: Any = None) -> str:
    lines = [
        f"# Grade: {verdict.status.label}",
        "",
        f"**{_plain(verdict.summary)}** · {verdict.score:g} / {verdict.max_score:g} points · "
        f"exercise `{verdict.provenance.exercise}` (version `{verdict.provenance.exercise_version[:12]}`)",
    ]
    if verdict.message and verdict.message != verdict.summary:
        lines += ["", _block(verdict.message)]
    if verdict.tests:
        lines += _mistakes_markdown(verdict)
        lines += ["", "**Every test**", "", "| test | | result |", "|---|---|---|"]
        for test in verdict.tests:
            why = test.message.splitlines()[0] if test.message and not test.ok else ""
            hint = f" (hint: {test.hint})" if test.hint and not test.ok else ""
            lines.append(
                f"| {_plain(test.name)} | {test.visibility} | {MARK[test.outcome]} {_plain(why + hint)} |"
            )
    if verdict.performance:
        lines += ["", "**Performance**", ""]
        lines += [f"- {_plain(describe_performance(p))}" for p in verdict.performance]
    source = verdict.notebook
    if source is not None:
        used = ", ".join(
            f"{c.number}" + (f" ({_plain(c.grade_id)})" if c.grade_id else "") for c in source.cells
        )
        lines += ["", f"Graded module `{source.module}`, made from cells {used or 'none'}."]
        lines += [f"- {_plain(note)}" for note in source.notes]
    if notebook is not None:
        edited = edited_locked_cells(notebook)
        if edited:
            lines += [
                "",
                "Locked cells that were edited or whose checksum no longer matches (the grader uses "
                f"its own tests, so this changed nothing): {', '.join(_plain(e) for e in edited)}.",
            ]
    if verdict.output:
        lines += ["", "Your output:", "", _block(verdict.output[:4000])]
    return "\n".join(lines)


def _mistakes_markdown(verdict: Verdict) -> list[str]:
    """The failing tests grouped by the mistake they share, the likeliest root cause first."""
    mistakes = verdict.mistakes
    if not mistakes:
        return []
    lines = ["", "**What to fix**, grouped by the mistake the failing tests share:", ""]
    for number, mistake in enumerate(mistakes, 1):
        first = "Fix this first: " if number == 1 and len(mistakes) > 1 else ""
        title = f"hint: {_plain(mistake.title)}" if mistake.kind == "hint" else _plain(mistake.title)
        size = f"{len(mistake.tests)} failing test{'s' if len(mistake.tests) != 1 else ''}"
        public = f", {mistake.public} public" if mistake.public else ""
        lines.append(f"{number}. **{first}{title}** ({size}{public})")
        example = verdict.test(mistake.example)
        if example is not None:
            why = example.message.splitlines()[0] if example.message and mistake.kind != "error" else ""
            why = f": {_plain(why)}" if why else ""
            lines.append(f"   - start with {_plain(example.name)} ({example.visibility}){why}")
        others = mistake.others()
        if others:
            lines.append(f"   - also: {_plain(others)}")
    return lines


def edited_locked_cells(notebook: Any) -> list[str]:
    """grade_ids of locked cells whose source no longer matches nbgrader's checksum."""
    from nbgrader.utils import compute_checksum

    edited = []
    for cell in notebook.get("cells", []):
        meta = nbgrader_meta(cell)
        if not meta.get("locked") or "checksum" not in meta:
            continue
        try:
            if compute_checksum(cell) != meta["checksum"]:
                edited.append(str(meta.get("grade_id", "?")))
        except Exception:  # noqa: BLE001 - malformed metadata: the cell counts as edited
            edited.append(str(meta.get("grade_id", "?")))
    return edited


def feedback_html(notebook: Any) -> str:
    """The feedback notebook as one self-contained, sanitised HTML page."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(sanitize_html=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(notebook)
    return str(body)


def _tests_markdown(tests: list[TestResult]) -> str:
    lines = []
    for test in tests:
        lines.append(f"**{MARK[test.outcome]}**: {_plain(test.name)}")
        if not test.ok and test.message:
            lines += ["", _block(test.message)]
        if not test.ok and test.hint:
            lines += ["", f"Hint: {_plain(test.hint)}"]
        lines.append("")
    return "\n".join(lines).rstrip()


def _block(text: str) -> str:
    """Text shown verbatim: a fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _plain(text: str) -> str:
    """Text safe inside Markdown: every character that could start markup escaped."""
    out = []
    for char in text.replace("\n", " "):
        out.append("\\" + char if char in "\\`*_{}[]()#+-.!|<>&~$" else char)
    return "".join(out)
