"""A new exercise package from templates: `grader exercise new SLUG`.

`templates/` holds a small but complete exercise (centre every vector of a tensor) whose
comments, marked TEMPLATE, say what to replace. `templates/exercise/` becomes
`<exercises>/<slug>/` and `templates/solution/` becomes `<solutions>/<slug>/`: each file loses its
`.tmpl` suffix and has its placeholders (`{{slug}}`, `{{title}}`, ...) filled. What is written
validates as it stands: the reference passes, the skeleton and the wrong variant fail.

Nothing is ever overwritten: an existing folder of the slug is refused before anything is
written, and a write that fails halfway removes what it made.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import keyword
import re
import shutil
import sys
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from pydantic import ValidationError

from grader.catalog import TrackFile
from grader.spec import SLUG, ExerciseSpec, format_validation_error

TEMPLATES = "templates"
SUFFIX = ".tmpl"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
LEVELS = range(1, 6)
MAX_MINUTES = 600
MAX_TITLE = 120
ROLES = {
    "README.md": "the lesson",
    "exercise.toml": "settings: track, level, limits, forbidden APIs, thresholds",
    "skeleton.py": "what the learner starts from",
    "test_public.py": "tests the learner reads and runs",
    "solution.py": "the reference solution",
    "test_hidden.py": "the hidden tests",
}


class ScaffoldError(Exception):
    """The package cannot be made; the message says why. Nothing was written."""


@dataclass(frozen=True)
class Scaffolded:
    slug: str
    track: str
    entrypoint: str
    exercise_dir: Path
    solution_dir: Path
    files: tuple[tuple[Path, str], ...]  # every file written, with what it is for


def scaffold(
    slug: str,
    exercises_dir: Path,
    solutions_dir: Path,
    *,
    title: str | None = None,
    track: str | None = None,
    level: int = 1,
    minutes: int = 30,
) -> Scaffolded:
    """Write `exercises_dir/<slug>/` and `solutions_dir/<slug>/` from the templates. `track`
    defaults to the first track of `exercises_dir/tracks.toml`, `title` to one made of the slug."""
    if not SLUG.match(slug):
        raise ScaffoldError(
            f"{slug!r} is not a slug: use lowercase letters, digits and single dashes, as in 'layer-norm'"
        )
    if not exercises_dir.is_dir():
        raise ScaffoldError(
            f"{exercises_dir}: no such directory (the exercises folder, with its tracks.toml)"
        )
    track = _track(track, exercises_dir / "tracks.toml")
    title = _title(title, slug)
    if level not in LEVELS:
        raise ScaffoldError(f"level {level} is out of range: 1 (first steps) .. 5 (hard)")
    if not 0 < minutes <= MAX_MINUTES:
        raise ScaffoldError(f"minutes {minutes} is out of range: 1 .. {MAX_MINUTES}")
    exercise_dir, solution_dir = exercises_dir / slug, solutions_dir / slug
    for folder in (exercise_dir, solution_dir):
        if folder.exists() or folder.is_symlink():
            raise ScaffoldError(f"{folder} already exists: choose another slug (nothing was written)")
    if solutions_dir.exists() and not solutions_dir.is_dir():
        raise ScaffoldError(f"{solutions_dir}: not a directory (the solutions folder)")
    entrypoint = entrypoint_for(slug)
    values = {
        "slug": slug,
        "title": title,
        "title_py": title.replace("\\", "\\\\").replace('"', '\\"'),
        "title_toml": json.dumps(title, ensure_ascii=False),  # a JSON string is a TOML basic string
        "track": track,
        "level": str(level),
        "minutes": str(minutes),
        "entrypoint": entrypoint,
    }
    rendered = {(side, relative): fill(text, values) for side, relative, text in templates()}
    _check(rendered)
    written = _write(rendered, {"exercise": exercise_dir, "solution": solution_dir}, solutions_dir)
    return Scaffolded(slug, track, entrypoint, exercise_dir, solution_dir, written)


def templates() -> Iterator[tuple[str, Path, str]]:
    """(side, path inside the package folder, text) of every template; side is `exercise` or
    `solution`."""
    root = resources.files("grader.authoring").joinpath(TEMPLATES)
    for side in ("exercise", "solution"):
        for relative, node in sorted(_walk(root.joinpath(side), Path()), key=lambda item: item[0]):
            yield side, relative, node.read_text(encoding="utf-8")


def _walk(folder: Traversable, relative: Path) -> Iterator[tuple[Path, Traversable]]:
    for node in folder.iterdir():
        if node.is_dir():
            yield from _walk(node, relative / node.name)
        elif node.name.endswith(SUFFIX):
            yield relative / node.name.removesuffix(SUFFIX), node


def fill(text: str, values: dict[str, str]) -> str:
    """The template `text` with every `{{name}}` replaced by `values[name]`."""
    return PLACEHOLDER.sub(lambda match: values[match[1]], text)


def entrypoint_for(slug: str) -> str:
    """The module name a learner's file is imported as: the slug with underscores, made a
    Python name, and kept clear of modules that exist (the runner registers the learner's module
    under this name, so `torch` or `random` would replace the real one)."""
    name = slug.replace("-", "_")
    if name[0].isdigit():
        name = f"ex_{name}"
    try:
        taken = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        taken = True
    if taken or keyword.iskeyword(name) or name in sys.stdlib_module_names:
        name = f"{name}_impl"
    return name


def _track(track: str | None, path: Path) -> str:
    if not path.is_file():
        raise ScaffoldError(
            f"{path}: missing (it lists the tracks in curriculum order, one [[tracks]] table each with "
            "id, title and summary; see docs/authoring.md)"
        )
    try:
        listed = [
            t.id for t in TrackFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8"))).tracks
        ]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScaffoldError(f"{path}: {exc}") from None
    except ValidationError as exc:
        raise ScaffoldError(f"{path}: {'; '.join(format_validation_error(exc))}") from None
    if not listed:
        raise ScaffoldError(f"{path} lists no track: add one ([[tracks]] with an id and a title)")
    if track is None:
        return listed[0]
    if track not in listed:
        close = difflib.get_close_matches(track, listed, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ScaffoldError(f"unknown track {track!r}.{hint} Known: {', '.join(listed)}")
    return track


def _title(title: str | None, slug: str) -> str:
    if title is None:
        return slug.replace("-", " ").capitalize()
    title = title.strip()
    if not title:
        raise ScaffoldError("the title is empty")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in title):
        raise ScaffoldError("the title must be one line of text")
    if len(title) > MAX_TITLE:
        raise ScaffoldError(f"the title has {len(title)} characters; at most {MAX_TITLE}")
    return title


def _check(rendered: dict[tuple[str, Path], str]) -> None:
    """What is about to be written reads back: the settings as a valid exercise.toml, every
    Python file as Python."""
    for (side, relative), text in rendered.items():
        where = f"{side}/{relative}"
        if relative.name == "exercise.toml":
            try:
                ExerciseSpec.model_validate(tomllib.loads(text))
            except tomllib.TOMLDecodeError as exc:
                raise ScaffoldError(f"{where} would not be valid TOML: {exc}") from None
            except ValidationError as exc:
                raise ScaffoldError(f"{where}: {'; '.join(format_validation_error(exc))}") from None
        elif relative.suffix == ".py":
            try:
                ast.parse(text, filename=where)
            except SyntaxError as exc:
                raise ScaffoldError(f"{where} would not be valid Python: {exc.msg}") from None


def _write(
    rendered: dict[tuple[str, Path], str], targets: dict[str, Path], solutions_dir: Path
) -> tuple[tuple[Path, str], ...]:
    made: list[Path] = []
    written: list[tuple[Path, str]] = []
    try:
        if not solutions_dir.exists():
            solutions_dir.mkdir(parents=True)
            made.append(solutions_dir)
        for folder in targets.values():
            folder.mkdir()  # never exist_ok: a folder made meanwhile is not ours to fill
            made.append(folder)
        for (side, relative), text in rendered.items():
            path = targets[side] / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as f:
                f.write(text)
            role = ROLES.get(relative.name, "a known-wrong solution" if relative.parts[0] == "wrong" else "")
            written.append((path, role))
    except FileExistsError as exc:
        _remove(made)
        raise ScaffoldError(
            f"{exc.filename} already exists: choose another slug (nothing was written)"
        ) from None
    except OSError as exc:
        _remove(made)
        raise ScaffoldError(f"cannot write {exc.filename}: {exc.strerror} (nothing was written)") from None
    return tuple(written)


def _remove(made: list[Path]) -> None:
    for folder in reversed(made):
        shutil.rmtree(folder, ignore_errors=True)
