"""Where in the submitted source an exception was raised, as the harness itself can vouch for it.

The runner reports the (line, function) of the submission's innermost frame, but the submission
controls both: it can rename its code objects or move their line numbers (`code.replace`) to
spell out whatever it computed. So a location is shown only when the harness's own parse of the
submitted source agrees: the line holds code inside a statement, and the function that encloses
it there has the reported name. The name and the line's text shown are read from that parse and
that source, never from the runner.

In hidden tests the choice of where to raise is still the submission's, so a grading shows at
most one location across all its hidden tests: the first one found, repeated where it recurs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from grader.remote import RemoteError
from grader.verdict import truncate

# frames of code that has no def of its own: the enclosing def (or the module) is named instead
ANONYMOUS = frozenset({"<lambda>", "<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})


@dataclass
class Locator:
    source: str
    module: str
    _sites: dict[int, str] | None = field(default=None, repr=False)
    _hidden: tuple[int, str] | None = field(default=None, repr=False)

    def where(self, exc: RemoteError) -> str:
        """` (attention.py, line 12, in mask: `x[i]`)`, or "" where the frames cannot be vouched for."""
        site = self._site(exc)
        return self._render(site) if site is not None else ""

    def where_hidden(self, exc: RemoteError) -> str:
        """`where`, but only the first location a hidden test reveals in this grading."""
        site = self._site(exc)
        if site is None:
            return ""
        if self._hidden is None:
            self._hidden = site
        return self._render(site) if site == self._hidden else ""

    def _site(self, exc: RemoteError) -> tuple[int, str] | None:
        frames = exc.frames
        if not frames:
            return None
        line, reported = frames[-1]
        function = self.sites().get(line)
        if function is None or (reported != function and reported not in ANONYMOUS):
            return None
        return line, function

    def sites(self) -> dict[int, str]:
        """Every line that holds code of a statement, with the function that encloses it."""
        if self._sites is None:
            self._sites = _code_lines(self.source)
        return self._sites

    def _render(self, site: tuple[int, str]) -> str:
        line, function = site
        text = self.source.splitlines()[line - 1].strip()
        return f" ({self.module}.py, line {line}, in {function}: `{truncate(text, 120)}`)"


def _code_lines(source: str) -> dict[int, str]:
    try:
        tree = ast.parse(source)
        nodes = list(ast.walk(tree))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    lines = source.splitlines()
    code: set[int] = set()
    bodies: list[tuple[int, int, str]] = []  # the lines of each def's body, and its name
    for node in nodes:
        if isinstance(node, ast.stmt):
            end = node.end_lineno or node.lineno
            code.update(n for n in range(node.lineno, end + 1) if _holds_code(lines, n))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            bodies.append((node.body[0].lineno, node.end_lineno or node.lineno, node.name))
    bodies.sort()  # by first line: a nested def comes after the def that holds it

    def enclosing(line: int) -> str:
        found = "<module>"
        for first, last, name in bodies:
            if first > line:
                break
            if line <= last:
                found = name
        return found

    return {line: enclosing(line) for line in code}


def _holds_code(lines: list[str], number: int) -> bool:
    text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return bool(text) and not text.startswith("#")
