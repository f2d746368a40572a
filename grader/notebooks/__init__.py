"""Jupyter notebooks in nbgrader's format: reading and grading a student's notebook, releasing one
for an exercise, importing an instructor's source notebook as an exercise, feedback notebooks,
and grades exported to an nbgrader gradebook.

nbformat and nbgrader load only when a notebook is involved: grading a `.py` file never pays for
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grader.notebooks.extract import Extraction, expected_names, extract_module
from grader.notebooks.reader import (
    NOTEBOOK_MAX_BYTES,
    NOTEBOOK_SUFFIX,
    is_notebook,
    read_notebook,
    submission_limit,
)

if TYPE_CHECKING:
    from grader.catalog import Exercise

__all__ = [
    "NOTEBOOK_MAX_BYTES",
    "NOTEBOOK_SUFFIX",
    "Extraction",
    "expected_names",
    "extract_module",
    "is_notebook",
    "module_from_notebook",
    "read_notebook",
    "submission_limit",
]


def module_from_notebook(
    raw: bytes, exercise: Exercise, filename: str, size: int | None = None
) -> Extraction:
    """The module `exercise` expects, made from the notebook in `raw`; Rejected when it cannot be."""
    notebook = read_notebook(raw, filename or "notebook.ipynb", size)
    return extract_module(
        notebook,
        f"{exercise.spec.entrypoint}.py",
        expected_names(exercise.directory / "skeleton.py"),
        filename or "notebook.ipynb",
    )
