"""Instructor uploads: a zipped exercise package, checked, then extracted into a folder of its own.

A zip is untrusted until it has been read: it can name files outside the folder it is extracted
into (`../`, absolute paths), hold links, lie about its sizes (zip bombs), or repeat a name that
differs only in case. Every entry is checked before anything is written; data is counted as it is
decompressed, never trusted from the headers; files go into a fresh temporary folder beside
`dest`, which is renamed into place only once the exercise loads with the catalog's own checks.
A refusal lists every reason found and leaves nothing on disk.

The zip holds, at its top or inside one top folder (a zipped folder), either the repository's
layout that docs/authoring.md teaches, `exercises/<slug>/` and `solutions/<slug>/` (one exercise;
`exercises/tracks.toml` is left out: the tracks are the server's), or the package's own,
`exercise/` and `solutions/`. On disk the two are kept apart under folders named after the slug,
as in the repository (the catalog's loader checks that an exercise's id is its folder's name):

    <dest>/exercise/<slug>/    exercise.toml  README.md  skeleton.py  test_public.py  ...
    <dest>/solutions/<slug>/   solution.py  test_hidden.py  wrong/*.py  ...
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat
import tempfile
import tomllib
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError

from grader.catalog import IGNORED_PARTS, SLUG, Exercise, _load_exercise
from grader.spec import ExerciseSpec

CHUNK = 64 * 1024
AREAS = ("exercise", "solutions")
# the repository's folders, each holding <slug>/, and the area each maps to
REPOSITORY = {"exercises": "exercise", "solutions": "solutions"}
LAYOUTS = (
    "exercises/<slug>/ and solutions/<slug>/ (the layout of docs/authoring.md) or exercise/ and solutions/"
)
JUNK_PARTS = IGNORED_PARTS | {"__MACOSX"}  # left out quietly, with .DS_Store and *.pyc
PLACEHOLDER = "unnamed"  # the exercise's folder while exercise.toml gives no valid id
# what zip tools write; not lzma, whose decoder sizes its buffers from the entry's header
COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
DRIVE = re.compile(r"^[A-Za-z]:")
MAX_PART_BYTES = 255
ENCRYPTED = 0x1


class UploadError(Exception):
    """The zip is refused; `problems` lists every reason, each a sentence an instructor can act on."""

    problems: list[str]

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class UploadLimits:
    """Caps on an upload, all checked before or while reading; `max_depth` counts every part of an
    entry's name, a top folder included."""

    max_zip_bytes: int = 20 * 1024 * 1024
    max_files: int = 200
    max_file_bytes: int = 5 * 1024 * 1024
    max_total_bytes: int = 50 * 1024 * 1024
    max_depth: int = 8


@dataclass(frozen=True)
class Package:
    """An extracted exercise. `exercise_dir` is `<dest>/exercise/<slug>` (what a student may see),
    `solutions_dir` is `<dest>/solutions/<slug>` (never served to students)."""

    slug: str
    version: str  # grader.catalog.content_hash(exercise_dir, solutions_dir)
    exercise_dir: Path
    solutions_dir: Path
    exercise: Exercise  # loaded and checked


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    area: str  # "exercise" or "solutions"
    parts: tuple[str, ...]  # the path inside that area


def extract_package(
    data: bytes,
    dest: Path,
    *,
    limits: UploadLimits = UploadLimits(),
    tracks: Iterable[str] = (),
    known: Iterable[str] = (),
) -> Package:
    """Check the zip `data` and extract it into `dest`, which must not exist yet. The exercise's
    track must be one of `tracks` and its prerequisites among `known` (either unchecked if empty).
    Raises UploadError listing every problem found; then nothing is left on disk."""
    with _open(data, limits) as archive:
        layout = _plan(archive, limits)
        entries = layout.entries
        spec = _read_spec(archive, entries, limits)
        if layout.folder is not None and spec is not None and spec.id != layout.folder:
            raise UploadError(
                [
                    f"{layout.shown('exercise')}/exercise.toml has id {spec.id!r}: an exercise's "
                    "folders are named after its id; rename them or change the id."
                ]
            )
        # the id becomes a folder name: checked here, not left to the schema alone
        folder = spec.id if spec is not None and SLUG.match(spec.id) else PLACEHOLDER
        with contextlib.ExitStack() as undo:  # on any failure, in reverse order
            _claim(dest)
            undo.callback(_unclaim, dest)
            work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".upload", dir=dest.parent))
            undo.callback(shutil.rmtree, work, ignore_errors=True)
            _extract(archive, entries, work, folder, limits)
            exercise = _load(work, folder, layout, spec, set(tracks), set(known))
            work.chmod(0o755)
            os.rename(work, dest)  # atomically replaces the empty folder that claimed the name
            undo.pop_all()
    exercise = _moved(exercise, dest)
    return Package(
        slug=exercise.slug,
        version=exercise.version,
        exercise_dir=exercise.directory,
        solutions_dir=exercise.solution_dir,
        exercise=exercise,
    )


def _open(data: bytes, limits: UploadLimits) -> zipfile.ZipFile:
    if len(data) > limits.max_zip_bytes:
        raise UploadError([f"The zip is {_size(len(data))}; the limit is {_size(limits.max_zip_bytes)}."])
    stream = io.BytesIO(data)
    if not zipfile.is_zipfile(stream):
        raise UploadError(
            ["The upload is not a zip file: zip the folder that holds exercises/ and solutions/."]
        )
    try:
        return zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError) as exc:
        raise UploadError([f"The zip is corrupt and cannot be read ({exc}); make it again."]) from None


def _plan(archive: zipfile.ZipFile, limits: UploadLimits) -> _Layout:
    """Every entry checked from the zip's directory alone; returns the top folder ('' or 'name/'),
    the entries to extract and the layout they came in."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise UploadError([f"The zip holds {len(infos)} entries; the limit is {limits.max_files}."])
    problems = [p for info in infos for p in _entry_problems(info, limits)]
    problems += _clashes(infos)
    declared = sum(i.file_size for i in infos if not i.is_dir())
    if declared > limits.max_total_bytes:
        problems.append(
            f"The files add up to {_size(declared)} uncompressed; "
            f"the limit is {_size(limits.max_total_bytes)}."
        )
    if problems:
        raise UploadError(problems)
    return _layout([i for i in infos if not _junk(i.filename)])


def _entry_problems(info: zipfile.ZipInfo, limits: UploadLimits) -> list[str]:
    name = info.orig_filename  # before zipfile cuts it at a NUL
    problems = _name_problems(name, limits)
    kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix mode, when the zip records one
    if kind == stat.S_IFLNK:
        problems.append(f"{name!r} is a symbolic link: put the file it points to in the zip instead.")
    elif kind not in (0, stat.S_IFDIR if info.is_dir() else stat.S_IFREG):
        problems.append(f"{name!r} is not a regular file or folder (a device, pipe or socket): leave it out.")
    if info.flag_bits & ENCRYPTED:
        problems.append(f"{name!r} is encrypted: make the zip without a password.")
    if info.compress_type not in COMPRESSION:
        problems.append(
            f"{name!r} uses compression method {info.compress_type}: make the zip with standard (deflate) "
            "compression."
        )
    if info.file_size > limits.max_file_bytes:
        problems.append(
            f"{name!r} is {_size(info.file_size)} uncompressed; the limit for one file is "
            f"{_size(limits.max_file_bytes)}."
        )
    return problems


def _name_problems(name: str, limits: UploadLimits) -> list[str]:
    parts = name.removesuffix("/").split("/")
    if any(unicodedata.category(c) == "Cc" for c in name):
        return [f"{name!r} has a control character (NUL, newline, ...) in its name: rename it."]
    if "\\" in name:
        return [
            f"{name!r} has a backslash in its name: make the zip with a tool that writes '/' between folders."
        ]
    if name.startswith("/"):
        return [f"{name!r} is an absolute path: zip the folder so that names are relative to it."]
    if DRIVE.match(name):
        return [f"{name!r} starts with a drive letter: zip the folder so that names are relative to it."]
    if ".." in parts:
        return [f"{name!r} climbs out of the package with '..': remove that entry."]
    if any(part in ("", ".") for part in parts):
        return [f"{name!r} has an empty or '.' folder in its name: remove that entry."]
    if len(parts) > limits.max_depth:
        return [f"{name!r} is nested {len(parts)} levels deep; the limit is {limits.max_depth}."]
    if any(len(part.encode()) > MAX_PART_BYTES for part in parts):
        return [f"{name!r} has a name longer than {MAX_PART_BYTES} bytes: shorten it."]
    return []


def _clashes(infos: list[zipfile.ZipInfo]) -> list[str]:
    """Names that would land on the same file: repeated, equal but for case or Unicode form (the
    same file on macOS and Windows), or a file that is also a folder."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    folders: set[str] = set()
    for info in infos:
        name = info.orig_filename.removesuffix("/")
        key = _key(name)
        if key not in seen:
            seen[key] = name
        elif seen[key] == name:
            problems.append(f"{name!r} appears twice in the zip: keep one.")
        else:
            problems.append(f"{name!r} and {seen[key]!r} differ only in case: keep one.")
        parts = name.split("/")
        folders.update(_key("/".join(parts[:i])) for i in range(1, len(parts)))
    problems += [
        f"{info.orig_filename!r} is both a file and a folder: rename one."
        for info in infos
        if not info.is_dir() and _key(info.orig_filename) in folders
    ]
    return problems


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _junk(name: str) -> bool:
    parts = name.removesuffix("/").split("/")
    return bool(JUNK_PARTS.intersection(parts)) or parts[-1] == ".DS_Store" or name.endswith(".pyc")


@dataclass(frozen=True)
class _Layout:
    root: str  # '' or 'name/': the one top folder the zip was made of
    entries: list[_Entry]
    folder: str | None  # the slug folder of the repository's layout (None: the package's layout)

    def shown(self, area: str) -> str:
        """How the zip names the folder of `area` ("exercise" or "solutions"), for messages."""
        if self.folder is None:
            return f"{self.root}{area}"
        top = next(top for top, mapped in REPOSITORY.items() if mapped == area)
        return f"{self.root}{top}/{self.folder}"


def _layout(infos: list[zipfile.ZipInfo]) -> _Layout:
    paths = [tuple(info.filename.removesuffix("/").split("/")) for info in infos]
    tops = {path[0] for path in paths}
    if tops & (set(AREAS) | set(REPOSITORY)):
        root: tuple[str, ...] = ()
    elif len(tops) == 1 and all(len(p) > 1 or i.is_dir() for i, p in zip(infos, paths, strict=True)):
        root = (tops.pop(),)
    else:
        found = ", ".join(sorted(tops)) or "nothing"
        raise UploadError(
            [f"The zip must hold {LAYOUTS}, at its top or inside one folder; it holds {found}."]
        )
    inside = [(info, path[len(root) :]) for info, path in zip(infos, paths, strict=True)]
    inside = [(info, rest) for info, rest in inside if rest]  # not the top folder itself
    firsts = {rest[0] for _, rest in inside}
    if "exercises" in firsts and "exercise" in firsts:
        raise UploadError(
            [
                "The zip holds both exercises/ and exercise/: keep one layout, "
                "exercises/<slug>/ and solutions/<slug>/."
            ]
        )
    if "exercises" in firsts:
        return _repository_layout(inside, "".join(f"{part}/" for part in root))
    entries, problems = [], []
    for info, rest in inside:
        if rest[0] in AREAS and (len(rest) > 1 or info.is_dir()):
            entries.append(_Entry(info, rest[0], rest[1:]))
        else:
            problems.append(
                f"{info.filename!r} is outside exercise/ and solutions/: move it there or leave it out."
            )
    if problems:
        raise UploadError(problems)
    return _Layout("".join(f"{part}/" for part in root), entries, None)


def _repository_layout(inside: list[tuple[zipfile.ZipInfo, tuple[str, ...]]], root: str) -> _Layout:
    """`exercises/<slug>/...` and `solutions/<slug>/...`: one exercise, the same slug in both."""
    entries, problems = [], []
    folders: dict[str, set[str]] = {top: set() for top in REPOSITORY}
    for info, rest in inside:
        if rest[0] not in REPOSITORY:
            problems.append(
                f"{info.filename!r} is outside exercises/ and solutions/: move it there or leave it out."
            )
        elif len(rest) == 1 or (rest == ("exercises", "tracks.toml") and not info.is_dir()):
            continue  # the folder itself; the tracks, which are the server's
        elif len(rest) == 2 and not info.is_dir():
            problems.append(
                f"{info.filename!r} is not inside an exercise's folder: put it in "
                f"{rest[0]}/<slug>/ or leave it out."
            )
        else:
            folders[rest[0]].add(rest[1])
            if len(rest) > 2 or info.is_dir():
                entries.append(_Entry(info, REPOSITORY[rest[0]], rest[2:]))
    named = folders["exercises"] | folders["solutions"]
    if len(named) > 1:
        listed = ", ".join(f"{top}/{slug}/" for top in REPOSITORY for slug in sorted(folders[top]))
        problems.append(
            f"The zip holds more than one exercise ({listed}): upload one at a time, "
            "with the same <slug> in exercises/ and solutions/."
        )
    else:
        for top, found in folders.items():
            if not found:
                problems.append(f"The zip has no {top}/<slug>/ folder: the exercise needs both halves.")
    if problems:
        raise UploadError(problems)
    return _Layout(root, entries, named.pop())


def _read_spec(archive: zipfile.ZipFile, entries: list[_Entry], limits: UploadLimits) -> ExerciseSpec | None:
    """exercise.toml, read ahead to name the exercise's folder; None when it is missing or invalid
    (the catalog's loader then says why, slug problems included)."""
    for entry in entries:
        if entry.area == "exercise" and entry.parts == ("exercise.toml",):
            buffer = io.BytesIO()
            _unpack(archive, entry.info, buffer.write, limits.max_file_bytes, limits)
            try:
                return ExerciseSpec.model_validate(tomllib.loads(buffer.getvalue().decode("utf-8")))
            except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError):
                return None
    return None


def _claim(dest: Path) -> None:
    try:
        dest.mkdir(mode=0o755)  # claims the name: a second upload to the same place is refused
    except FileExistsError:
        raise UploadError([f"{dest} already exists: an upload is extracted into a new folder."]) from None


def _unclaim(dest: Path) -> None:
    with contextlib.suppress(OSError):  # no longer our empty folder: leave it
        dest.rmdir()


def _extract(
    archive: zipfile.ZipFile, entries: list[_Entry], work: Path, folder: str, limits: UploadLimits
) -> None:
    total = 0
    for entry in entries:
        where = (entry.area, folder, *entry.parts)
        if entry.info.is_dir():
            _makedirs(work, where)
            continue
        _makedirs(work, where[:-1])
        cap = min(limits.max_file_bytes, limits.max_total_bytes - total)
        fd = os.open(
            work.joinpath(*where), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        os.fchmod(fd, 0o644)  # whatever the umask
        with open(fd, "wb") as out:
            total += _unpack(archive, entry.info, out.write, cap, limits)


def _makedirs(base: Path, parts: Iterable[str]) -> None:
    path = base
    for part in parts:
        path = path / part
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            if not stat.S_ISDIR(path.lstat().st_mode):  # ruled out by _clashes; never follow a link
                raise UploadError(
                    [f"{path.relative_to(base)} is both a file and a folder: rename one."]
                ) from None
            continue
        path.chmod(0o755)  # mkdir's mode is masked by the umask; the folder is new and ours


def _unpack(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    write: Callable[[bytes], object],
    cap: int,
    limits: UploadLimits,
) -> int:
    """Decompress one entry through `write`; refused once more than `cap` bytes come out, whatever
    its header says (a zip bomb)."""
    name = info.filename
    try:
        with archive.open(info) as source:
            count = _copy(source.read, write, cap)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        raise UploadError(
            [
                f"{name!r} is corrupt: its data does not match the size or checksum the zip records ({exc}); "
                "make the zip again."
            ]
        ) from None
    if count > limits.max_file_bytes:
        raise UploadError(
            [
                f"{name!r} decompresses to more than {_size(limits.max_file_bytes)}, the limit for one file "
                f"(its header says {_size(info.file_size)})."
            ]
        )
    if count > cap:
        raise UploadError([f"The files decompress to more than {_size(limits.max_total_bytes)}, the limit."])
    return count


def _copy(read: Callable[[int], bytes], write: Callable[[bytes], object], cap: int) -> int:
    """Copy to the end, or stop once more than `cap` bytes were read; the count says which (the
    chunk that goes past the cap is not written)."""
    count = 0
    while chunk := read(min(CHUNK, cap + 1 - count)):
        count += len(chunk)
        if count > cap:
            break
        write(chunk)
    return count


def _load(
    work: Path, folder: str, layout: _Layout, spec: ExerciseSpec | None, tracks: set[str], known: set[str]
) -> Exercise:
    """The catalog's checks, then the curriculum's; problems name files as they are in the zip."""
    problems: list[str] = []
    exercise = _load_exercise(work / "exercise" / folder, work / "solutions" / folder, problems)
    for area in AREAS:
        problems = [p.replace(str(work / area / folder), layout.shown(area)) for p in problems]
    toml = f"{layout.shown('exercise')}/exercise.toml"
    if spec is not None:
        problems += _curriculum_problems(spec, toml, tracks, known)
    if exercise is None or problems:
        raise UploadError(problems or [f"{toml} could not be loaded."])
    return exercise


def _curriculum_problems(spec: ExerciseSpec, where: str, tracks: set[str], known: set[str]) -> list[str]:
    problems = []
    if tracks and spec.track not in tracks:
        problems.append(
            f"{where}: track {spec.track!r} is not one of the tracks: {', '.join(sorted(tracks))}."
        )
    for prereq in spec.prerequisites:
        if prereq == spec.id:
            problems.append(f"{where}: an exercise cannot be its own prerequisite.")
        elif known and prereq not in known:
            problems.append(
                f"{where}: unknown prerequisite {prereq!r}; upload that exercise first or remove it."
            )
    return problems


def _moved(exercise: Exercise, dest: Path) -> Exercise:
    """The same exercise, its paths in `dest` rather than in the folder where it was checked."""
    directory = dest / "exercise" / exercise.slug
    solution_dir = dest / "solutions" / exercise.slug
    wrong = tuple(
        replace(w, path=solution_dir / w.path.relative_to(exercise.solution_dir)) for w in exercise.wrong
    )
    return replace(exercise, directory=directory, solution_dir=solution_dir, wrong=wrong)


def _size(count: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{round(count / scale, 1):g} {unit}"
    return f"{count} bytes"
