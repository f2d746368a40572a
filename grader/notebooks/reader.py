"""Reading a submitted notebook on the trusted side: bytes in, a validated nbformat 4 notebook out,
or `Rejected` with a message a student can act on. Nothing in the notebook is executed."""

from __future__ import annotations

import json
import warnings
from typing import Any

from grader.static import Rejected

NOTEBOOK_SUFFIX = ".ipynb"
NOTEBOOK_MAX_BYTES = 8 * 1024 * 1024  # outputs and images included; the code itself is far smaller


def is_notebook(filename: str, raw: bytes = b"") -> bool:
    """A notebook by name, or a `.py`-less upload whose bytes are a notebook's JSON."""
    if filename.lower().endswith(NOTEBOOK_SUFFIX):
        return True
    if filename.lower().endswith(".py"):
        return False
    head = raw[:4096].lstrip()
    return head.startswith(b"{") and b'"cells"' in raw[:1_000_000] and b'"nbformat"' in raw


def submission_limit(source_kb: int, filename: str) -> int:
    """How many bytes a submission under this name may have."""
    return NOTEBOOK_MAX_BYTES if is_notebook(filename) else source_kb * 1024


def read_notebook(raw: bytes, name: str = "notebook.ipynb", size: int | None = None) -> Any:
    """The notebook in `raw` (a NotebookNode), validated against the nbformat 4 schema."""
    real = max(len(raw), size or 0)
    if real > NOTEBOOK_MAX_BYTES:
        raise Rejected(
            f"{name} is {_mb(real)}; notebooks are limited to {_mb(NOTEBOOK_MAX_BYTES)}. "
            "Clear the outputs (Edit > Clear All Outputs) and save it again."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Rejected(
            f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "a notebook is a UTF-8 JSON file. Save it again from Jupyter."
        ) from None
    if not text.strip():
        raise Rejected(f"{name} is empty.")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejected(
            f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
            "Was it saved while half-written, or edited by hand? Save it again from Jupyter."
        ) from None
    except RecursionError:
        raise Rejected(f"{name} is not a notebook: its JSON is nested too deeply.") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise Rejected(f"{name} is JSON but not a Jupyter notebook (it has no list of cells).")
    major = data.get("nbformat")
    if major != 4:
        shown = major if isinstance(major, int) else "missing"
        raise Rejected(
            f"{name} has nbformat version {shown}; only nbformat 4 notebooks (Jupyter 4 and later) "
            "are accepted. Open it in a current Jupyter and save it again."
        )
    import nbformat  # noqa: PLC0415 - a notebook's libraries load only when a notebook comes
    from nbformat.v4.rwbase import rejoin_lines  # sources saved as lists of lines become strings
    from nbformat.validator import normalize

    try:
        with warnings.catch_warnings():  # missing or repeated cell ids (a copied cell): mended
            warnings.simplefilter("ignore")
            _, data = normalize(data)
            notebook = rejoin_lines(nbformat.from_dict(data))
            _unique_ids(notebook)
            nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", ())) or "the top level"
        message = str(getattr(exc, "message", exc)).splitlines()[0][:300]
        raise Rejected(f"{name} is not a valid nbformat 4 notebook (at {where}: {message}).") from None
    except (RecursionError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise Rejected(f"{name} is not a valid notebook ({type(exc).__name__}).") from None
    return notebook


def _unique_ids(notebook: Any) -> None:
    """A repeated cell id (a copied cell) gets a fresh one, as Jupyter would give it."""
    from nbformat.corpus.words import generate_corpus_id

    seen: set[str] = set()
    for cell in notebook.get("cells", []):
        if not isinstance(cell, dict) or "id" not in cell:
            continue
        if cell["id"] in seen:
            cell["id"] = generate_corpus_id()
        seen.add(cell["id"])


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"
