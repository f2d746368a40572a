"""Instructor uploads: a real exercise extracts and loads; every hostile or broken zip is refused
with a message naming the problem, nothing written outside `dest`, and no `dest` left behind."""

from __future__ import annotations

import io
import os
import stat
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from grader.catalog import content_hash
from web import uploads
from web.uploads import UploadError, UploadLimits, extract_package

ROOT = Path(__file__).resolve().parents[2]
EXERCISE = ROOT / "exercises" / "causal-masking"
SOLUTIONS = ROOT / "solutions" / "causal-masking"
TOML = "exercise/exercise.toml"

Entry = tuple[str | zipfile.ZipInfo, bytes]


def real_files() -> dict[str, bytes]:
    """The causal-masking package as zip names (flat layout) and bytes."""
    files = {}
    for area, folder in (("exercise", EXERCISE), ("solutions", SOLUTIONS)):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[f"{area}/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
    return files


def make_zip(entries: Iterable[Entry], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate names some tests need
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def package(*extra: Entry, skip: tuple[str, ...] = (), edit: dict[str, bytes] | None = None) -> bytes:
    files = {name: data for name, data in real_files().items() if name not in skip} | (edit or {})
    return make_zip([*files.items(), *extra])


def toml_with(old: str, new: str) -> dict[str, bytes]:
    text = real_files()[TOML].decode()
    assert old in text
    return {TOML: text.replace(old, new).encode()}


def special(name: str, mode: int, data: bytes = b"") -> Entry:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info, data


def patch_headers(data: bytes, name: str, field: tuple[int, int], value: bytes) -> bytes:
    """Overwrite one field of both headers that describe `name`: its offset in the local header
    and in the central directory."""
    raw, encoded = bytearray(data), name.encode()
    for signature, offset, length in ((b"PK\x03\x04", field[0], 30), (b"PK\x01\x02", field[1], 46)):
        start = next(
            i
            for i in range(len(raw))
            if raw[i : i + 4] == signature and raw[i + length : i + length + len(encoded)] == encoded
        )
        raw[start + offset : start + offset + len(value)] = value
    return bytes(raw)


FLAGS, UNCOMPRESSED_SIZE = (6, 8), (22, 24)  # field offsets: local header, central directory


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
    }


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "other.txt").write_text("an unrelated file next to dest")
    return site / "pkg"


def refuse(data: bytes, dest: Path, **kwargs: Any) -> list[str]:
    before = snapshot(dest.parent.parent)
    with pytest.raises(UploadError) as info:
        extract_package(data, dest, **kwargs)
    assert not os.path.lexists(dest)
    assert snapshot(dest.parent.parent) == before
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def problem(data: bytes, dest: Path, **kwargs: Any) -> str:
    problems = refuse(data, dest, **kwargs)
    assert len(problems) == 1, problems
    return problems[0]


# --- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize("top", ["", "causal-masking-v2/"], ids=["flat", "one-top-folder"])
def test_a_real_package_extracts_and_loads(dest: Path, top: str) -> None:
    files = real_files()
    before = snapshot(dest.parent)
    old_umask = os.umask(0o077)
    try:
        pkg = extract_package(
            make_zip((top + name, data) for name, data in files.items()),
            dest,
            tracks=["attention", "training"],
            known=["causal-masking"],
        )
    finally:
        os.umask(old_umask)

    assert pkg.slug == "causal-masking"
    assert pkg.exercise_dir == dest / "exercise" / "causal-masking"
    assert pkg.solutions_dir == dest / "solutions" / "causal-masking"
    assert pkg.version == content_hash(pkg.exercise_dir, pkg.solutions_dir) == pkg.exercise.version
    assert pkg.version == content_hash(EXERCISE, SOLUTIONS)
    assert pkg.exercise.directory == pkg.exercise_dir and pkg.exercise.solution_dir == pkg.solutions_dir
    assert pkg.exercise.spec.track == "attention"
    assert sorted(w.name for w in pkg.exercise.wrong) == sorted(
        p.stem for p in (SOLUTIONS / "wrong").glob("*.py")
    )
    assert all(w.path.parent == pkg.solutions_dir / "wrong" and w.path.is_file() for w in pkg.exercise.wrong)

    extracted = {
        f"{area}/{p.relative_to(folder).as_posix()}": p.read_bytes()
        for area, folder in (("exercise", pkg.exercise_dir), ("solutions", pkg.solutions_dir))
        for p in folder.rglob("*")
        if p.is_file()
    }
    assert extracted == files
    for path in [dest, *dest.rglob("*")]:
        assert not path.is_symlink()
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    after = snapshot(dest.parent)
    assert {k: v for k, v in after.items() if not k.startswith("pkg")} == before  # no temporary left


def repository_files(slug: str = "causal-masking") -> dict[str, bytes]:
    """The same package in the repository's layout, as docs/authoring.md teaches it."""
    areas = {"exercise/": f"exercises/{slug}/", "solutions/": f"solutions/{slug}/"}
    return {
        next(new + name.removeprefix(old) for old, new in areas.items() if name.startswith(old)): data
        for name, data in real_files().items()
    }


@pytest.mark.parametrize("top", ["", "course/"], ids=["flat", "one-top-folder"])
def test_the_guides_layout_extracts_as_the_package_does(dest: Path, top: str) -> None:
    files = repository_files() | {"exercises/tracks.toml": b"[[tracks]]\nid = 'attention'\n"}
    pkg = extract_package(make_zip((top + name, data) for name, data in files.items()), dest)
    assert pkg.slug == "causal-masking"
    assert pkg.version == content_hash(EXERCISE, SOLUTIONS)  # tracks.toml left out: the server's
    assert pkg.exercise_dir == dest / "exercise" / "causal-masking"
    assert {p.name for p in pkg.exercise_dir.iterdir()} == {p.name for p in EXERCISE.iterdir()}


def test_the_guides_layout_names_its_own_folders_in_problems(dest: Path) -> None:
    files = {n: d for n, d in repository_files().items() if n != "solutions/causal-masking/solution.py"}
    assert refuse(make_zip(files.items()), dest) == ["solutions/causal-masking/solution.py: missing"]


def test_the_guides_layout_needs_folders_named_after_the_id(dest: Path) -> None:
    text = problem(make_zip(repository_files("masking").items()), dest)
    assert text == (
        "exercises/masking/exercise.toml has id 'causal-masking': an exercise's folders are named "
        "after its id; rename them or change the id."
    )


def test_the_guides_layout_holds_one_exercise(dest: Path) -> None:
    files = repository_files() | {"exercises/rope/README.md": b"#", "solutions/rope/solution.py": b""}
    text = problem(make_zip(files.items()), dest)
    assert text == (
        "The zip holds more than one exercise (exercises/causal-masking/, exercises/rope/, "
        "solutions/causal-masking/, solutions/rope/): upload one at a time, with the same <slug> in "
        "exercises/ and solutions/."
    )
    halves = {n: d for n, d in repository_files().items() if n.startswith("exercises/")}
    assert problem(make_zip(halves.items()), dest) == (
        "The zip has no solutions/<slug>/ folder: the exercise needs both halves."
    )


def test_the_guides_layout_refuses_loose_files_and_mixed_layouts(dest: Path) -> None:
    loose = repository_files() | {"solutions/notes.md": b"to self"}
    assert problem(make_zip(loose.items()), dest) == (
        "'solutions/notes.md' is not inside an exercise's folder: "
        "put it in solutions/<slug>/ or leave it out."
    )
    mixed = repository_files() | {"exercise/README.md": b"#"}
    assert problem(make_zip(mixed.items()), dest) == (
        "The zip holds both exercises/ and exercise/: "
        "keep one layout, exercises/<slug>/ and solutions/<slug>/."
    )


def test_mac_and_cache_litter_is_left_out_quietly(dest: Path) -> None:
    pkg = extract_package(
        package(
            ("__MACOSX/exercise/._README.md", b"\0\5\26\7"),
            ("exercise/.DS_Store", b"\0\0\0\1Bud1"),
            ("solutions/__pycache__/solution.cpython-311.pyc", b"\xa7\r\r\n"),
            ("exercise/helper.pyc", b"\xa7\r\r\n"),
            ("exercise/data/tokens.txt", b"a b c\n"),
        ),
        dest,
    )
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*")}
    assert "exercise/causal-masking/data/tokens.txt" in names
    assert not [n for n in names if "MACOSX" in n or "DS_Store" in n or "pycache" in n or n.endswith(".pyc")]
    assert pkg.version == content_hash(pkg.exercise_dir, pkg.solutions_dir)


# --- the zip itself -----------------------------------------------------------------------------


def test_not_a_zip(dest: Path) -> None:
    assert "not a zip file" in problem(b"PK? no, just some text\n" * 10, dest)


def test_a_corrupt_zip(dest: Path) -> None:
    data = package()
    central = data.rfind(b"PK\x01\x02")  # the last central-directory record
    assert "is corrupt" in problem(data[: central - 1] + data[central:], dest)


def test_a_zip_over_the_size_limit(dest: Path) -> None:
    data = package()
    text = problem(data, dest, limits=UploadLimits(max_zip_bytes=len(data) - 1))
    assert text.startswith("The zip is ") and "the limit is" in text


def test_too_many_entries(dest: Path) -> None:
    count = len(real_files())
    assert problem(package(), dest, limits=UploadLimits(max_files=count - 1)) == (
        f"The zip holds {count} entries; the limit is {count - 1}."
    )


# --- names and entry types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../x", "climbs out of the package with '..'"),
        ("exercise/../../x", "climbs out of the package with '..'"),
        ("/etc/x", "is an absolute path"),
        ("exercise\\x.py", "has a backslash"),
        ("C:/x.py", "starts with a drive letter"),
        ("exercise/a\nb.py", "has a control character"),
        ("exercise/./x.py", "has an empty or '.' folder"),
        ("exercise//x.py", "has an empty or '.' folder"),
        ("exercise/" + "d/" * 8 + "x.py", "is nested 10 levels deep; the limit is 8"),
        ("exercise/" + "n" * 256, "longer than 255 bytes"),
    ],
    ids=[
        "dotdot",
        "dotdot-inside",
        "absolute",
        "backslash",
        "drive",
        "newline",
        "dot",
        "empty",
        "deep",
        "long",
    ],
)
def test_unsafe_names(dest: Path, name: str, expected: str) -> None:
    text = problem(package((name, b"x = 1\n")), dest)
    assert text.startswith(repr(name)) and expected in text


def test_a_nul_in_a_name(dest: Path) -> None:
    data = package(("exercise/evil.pyXtxt", b"x"))
    assert data.count(b"evil.pyXtxt") == 2  # the local header and the central directory
    assert "has a control character" in problem(data.replace(b"evil.pyXtxt", b"evil.py\0txt"), dest)


def test_a_symlink_entry(dest: Path) -> None:
    text = problem(package(special("exercise/passwd", stat.S_IFLNK | 0o777, b"/etc/passwd")), dest)
    assert text == "'exercise/passwd' is a symbolic link: put the file it points to in the zip instead."


def test_a_fifo_entry(dest: Path) -> None:
    text = problem(package(special("exercise/pipe", stat.S_IFIFO | 0o644)), dest)
    assert text.startswith("'exercise/pipe' is not a regular file or folder")


def test_an_encrypted_entry(dest: Path) -> None:
    data = package(("exercise/secret.txt", b"x"))
    encrypted = patch_headers(data, "exercise/secret.txt", FLAGS, (0x1).to_bytes(2, "little"))
    with zipfile.ZipFile(io.BytesIO(encrypted)) as archive:
        assert archive.getinfo("exercise/secret.txt").flag_bits & 0x1
    text = problem(encrypted, dest)
    assert text == "'exercise/secret.txt' is encrypted: make the zip without a password."


def test_an_unsupported_compression_method(dest: Path) -> None:
    info = zipfile.ZipInfo("exercise/data.txt")
    info.compress_type = zipfile.ZIP_BZIP2
    text = problem(package((info, b"x" * 100)), dest)
    assert text.startswith("'exercise/data.txt' uses compression method 12")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("exercise/README.md", b"again"), "'exercise/README.md' appears twice in the zip"),
        (
            ("exercise/readme.MD", b"again"),
            "'exercise/readme.MD' and 'exercise/README.md' differ only in case",
        ),
        (("exercise/data", b"a file"), None),
    ],
    ids=["duplicate", "case-duplicate", "file-and-folder"],
)
def test_names_that_land_on_the_same_file(dest: Path, extra: Entry, expected: str | None) -> None:
    if expected is None:
        text = problem(package(extra, ("exercise/data/x.txt", b"in a folder")), dest)
        assert text == "'exercise/data' is both a file and a folder: rename one."
    else:
        assert problem(package(extra), dest).startswith(expected)


# --- sizes and zip bombs ------------------------------------------------------------------------


def test_a_bomb_whose_header_lies_is_cut_off(dest: Path) -> None:
    data = package(("exercise/zeros.bin", b"\0" * (16 * 2**20)))
    assert len(data) < 2**20  # highly compressible
    forged = patch_headers(data, "exercise/zeros.bin", UNCOMPRESSED_SIZE, (1000).to_bytes(4, "little"))
    with zipfile.ZipFile(io.BytesIO(forged)) as archive:
        assert archive.getinfo("exercise/zeros.bin").file_size == 1000  # the lie gets past the header check
    text = problem(forged, dest, limits=UploadLimits(max_file_bytes=2**20))
    assert text.startswith("'exercise/zeros.bin' is corrupt: its data does not match the size or checksum")


def test_reading_stops_at_the_cap_whatever_the_stream_holds() -> None:
    class Endless(io.RawIOBase):
        handed_out = 0

        def read(self, size: int | None = -1) -> bytes:
            size = uploads.CHUNK if size is None or size < 0 else size
            self.handed_out += size
            return b"\0" * size

    source, written = Endless(), bytearray()
    count = uploads._copy(source.read, written.extend, cap=3 * uploads.CHUNK + 10)
    assert count == 3 * uploads.CHUNK + 11  # one byte past the cap says "too much"
    assert source.handed_out == count and len(written) == 3 * uploads.CHUNK  # the last chunk is dropped
    assert (
        uploads._copy(io.BytesIO(b"x" * 100).read, written.extend, cap=100) == 100
    )  # exactly the cap is fine


def test_a_file_whose_header_declares_too_much(dest: Path) -> None:
    text = problem(
        package(("exercise/big.bin", b"\1" * 300_000)), dest, limits=UploadLimits(max_file_bytes=200_000)
    )
    assert text == "'exercise/big.bin' is 293 KiB uncompressed; the limit for one file is 195.3 KiB."


def test_files_that_add_up_to_too_much(dest: Path) -> None:
    total = sum(len(d) for d in real_files().values())
    data = package(("exercise/a.bin", b"\1" * 50_000), ("exercise/b.bin", b"\2" * 50_000))
    text = problem(data, dest, limits=UploadLimits(max_total_bytes=total + 60_000))
    assert text.startswith("The files add up to ") and "uncompressed; the limit is" in text


# --- layout and the exercise itself -------------------------------------------------------------


def test_a_zip_without_the_two_folders(dest: Path) -> None:
    text = problem(make_zip([("a/exercise/README.md", b"#"), ("b/solutions/solution.py", b"")]), dest)
    assert text == (
        "The zip must hold exercises/<slug>/ and solutions/<slug>/ (the layout of docs/authoring.md) or "
        "exercise/ and solutions/, at its top or inside one folder; it holds a, b."
    )


def test_a_file_outside_exercise_and_solutions(dest: Path) -> None:
    text = problem(package(("notes.txt", b"to self")), dest)
    assert text == "'notes.txt' is outside exercise/ and solutions/: move it there or leave it out."


@pytest.mark.parametrize("top", ["", "upload/"], ids=["flat", "one-top-folder"])
def test_a_missing_solution(dest: Path, top: str) -> None:
    files = {top + n: d for n, d in real_files().items() if n != "solutions/solution.py"}
    assert refuse(make_zip(files.items()), dest) == [f"{top}solutions/solution.py: missing"]


def test_an_unknown_track(dest: Path) -> None:
    text = problem(package(), dest, tracks=["tokenization", "training"])
    assert (
        text == "exercise/exercise.toml: track 'attention' is not one of the tracks: tokenization, training."
    )


def test_an_unknown_prerequisite(dest: Path) -> None:
    data = package(edit=toml_with("prerequisites = []", 'prerequisites = ["rope", "ghost"]'))
    text = problem(data, dest, known=["rope", "rmsnorm"])
    assert (
        text
        == "exercise/exercise.toml: unknown prerequisite 'ghost'; upload that exercise first or remove it."
    )


def test_an_id_that_is_not_a_slug(dest: Path) -> None:
    data = package(edit=toml_with('id = "causal-masking"', 'id = "Causal_Masking"'))
    text = problem(data, dest)
    assert text.startswith("exercise/exercise.toml: id: 'Causal_Masking' is not a slug")


def test_every_problem_is_reported_at_once(dest: Path) -> None:
    data = package(skip=("solutions/solution.py", "exercise/skeleton.py"))
    assert refuse(data, dest, tracks=["training"]) == [
        "exercise/skeleton.py: missing",
        "solutions/solution.py: missing",
        "exercise/exercise.toml: track 'attention' is not one of the tracks: training.",
    ]


def test_dest_that_exists_is_left_alone(dest: Path) -> None:
    dest.mkdir()
    (dest / "keep.txt").write_text("an earlier upload")
    before = snapshot(dest.parent.parent)
    with pytest.raises(UploadError) as info:
        extract_package(package(), dest)
    assert info.value.problems == [f"{dest} already exists: an upload is extracted into a new folder."]
    assert snapshot(dest.parent.parent) == before
