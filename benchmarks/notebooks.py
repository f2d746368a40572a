"""What a notebook costs on the trusted side, before any sandbox starts: median of several runs.

    .venv/bin/python benchmarks/notebooks.py [--exercise causal-masking] [--runs 21]

Measures reading and validating a released notebook and making the graded module from it (the
work the engine adds for a `.ipynb`), the same for a notebook padded with outputs to just under
the 8 MB limit, the rejection of a 500 MB file (decided from its size alone), and, for scale,
the static checks of the same module as a `.py` file. Also the one-off import of nbformat and
nbgrader in a fresh interpreter (paid by `grader notebook release` and feedback, not by grading).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import nbformat

from grader.catalog import load_catalog
from grader.notebooks import NOTEBOOK_MAX_BYTES, module_from_notebook
from grader.notebooks.release import notebook_bytes
from grader.settings import get_settings
from grader.static import Rejected, check_source


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    q = statistics.quantiles(times, n=4)
    return statistics.median(times), q[2] - q[0]


def padded(raw: bytes, target: int) -> bytes:
    """The notebook with a stream output on its first code cell, to `target` bytes or so."""
    notebook = nbformat.reads(raw.decode(), as_version=4)
    heavy = copy.deepcopy(notebook)
    cell = next(c for c in heavy.cells if c.cell_type == "code")
    line = "x" * 99 + "\n"
    room = target - len(raw)
    while True:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=line * (room // len(line)))]
        data = nbformat.writes(heavy).encode()
        if len(data) <= target:
            return data
        room = int(room * target / len(data) * 0.99)  # the file's JSON costs more than the text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="causal-masking")
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    settings = get_settings()
    exercise = load_catalog(settings.exercises_dir, settings.solutions_dir).get(args.exercise)
    raw = notebook_bytes(exercise)
    heavy = padded(raw, NOTEBOOK_MAX_BYTES - 64 * 1024)
    module = module_from_notebook(raw, exercise, "work.ipynb").source.encode()

    def rejected_huge() -> None:
        try:
            module_from_notebook(b"{", exercise, "huge.ipynb", size=500 * 1024 * 1024)
        except Rejected:
            return
        raise AssertionError("a 500 MB notebook was not rejected")

    rows = [
        (
            f"released notebook ({len(raw) / 1024:.0f} KB): read, validate, extract",
            lambda: module_from_notebook(raw, exercise, "w.ipynb"),
        ),
        (
            f"notebook with outputs ({len(heavy) / 1024 / 1024:.1f} MB)",
            lambda: module_from_notebook(heavy, exercise, "w.ipynb"),
        ),
        ("500 MB notebook: rejected", rejected_huge),
        (
            f"static checks of the module as a .py ({len(module) / 1024:.1f} KB)",
            lambda: check_source(module, exercise.spec, "m.py"),
        ),
    ]
    print(f"{'what':64} {'median ms':>10} {'IQR ms':>8}")
    for label, fn in rows:
        fn()  # warm
        median, iqr = median_ms(fn, args.runs)
        print(f"{label:64} {median:10.2f} {iqr:8.2f}")
    code = (
        "import time; t = time.perf_counter(); "
        "import nbformat, nbgrader.preprocessors, nbgrader.utils; print(time.perf_counter() - t)"
    )
    imports = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(5)
    ]
    print(
        f"{'import nbformat + nbgrader in a fresh interpreter':64} {1000 * statistics.median(imports):10.0f}"
    )


if __name__ == "__main__":
    main()
