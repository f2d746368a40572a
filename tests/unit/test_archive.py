"""Exercise versions as archives named by their content: reproducible, checked twice on the way
out (the bytes' SHA-256, the version's content hash), and never unpacked outside their folder."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from grader import archive
from grader.catalog import content_hash, load_catalog
from grader.library import Library, backfill_archives, exercise_folders, package_root, store_archive
from grader.store import ExercisePackage, PackageArchive, PackageState, sessions, transaction, upgrade
from tests.conftest import FIXTURES

SLUG = "toy-sum"


def stored_package(root: Path) -> tuple[Path, str]:
    """The fixture catalog's toy-sum laid out as an upload is stored; (root, version)."""
    shutil.copytree(FIXTURES / "catalog" / "exercises" / SLUG, root / "exercise" / SLUG)
    shutil.copytree(FIXTURES / "catalog" / "solutions" / SLUG, root / "solutions" / SLUG)
    return root, content_hash(*exercise_folders(root))


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def test_the_same_files_give_the_same_bytes_whatever_their_times(tmp_path: Path) -> None:
    root, _ = stored_package(tmp_path / "a")
    first = archive.pack(root)
    for path in root.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    (root / "exercise" / SLUG / "__pycache__").mkdir()
    (root / "exercise" / SLUG / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert archive.pack(root) == first
    (root / "exercise" / SLUG / "README.md").write_text("changed")
    assert archive.pack(root) != first


def test_unpack_gives_back_the_version_and_refuses_other_bytes(tmp_path: Path) -> None:
    root, version = stored_package(tmp_path / "a")
    data = archive.pack(root)
    digest = archive.sha256(data)
    out = archive.unpack(data, digest, tmp_path / "b" / version, version)
    assert content_hash(*exercise_folders(out)) == version
    assert archive.unpack(data, digest, out, version) == out  # a copy already there stays

    with pytest.raises(archive.ArchiveError, match="SHA-256"):
        archive.unpack(data[:-1] + bytes([data[-1] ^ 1]), digest, tmp_path / "c", version)
    # bytes that match their own name but hold other files than the version says
    (root / "solutions" / SLUG / "solution.py").write_text("def rows(x):\n    return 0\n")
    other = archive.pack(root)
    with pytest.raises(archive.ArchiveError, match=f"not {version}"):
        archive.unpack(other, archive.sha256(other), tmp_path / "d", version)
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no staging folder left behind


@pytest.mark.parametrize(
    ("name", "kind", "problem"),
    [
        ("../escape.py", tarfile.REGTYPE, "outside a package"),
        ("/etc/passwd", tarfile.REGTYPE, "outside a package"),
        ("elsewhere/x.py", tarfile.REGTYPE, "outside a package"),
        ("exercise/toy-sum/link", tarfile.SYMTYPE, "other than a file or folder"),
        ("exercise/toy-sum/fifo", tarfile.FIFOTYPE, "other than a file or folder"),
    ],
)
def test_unpack_refuses_entries_that_are_not_package_files(
    tmp_path: Path, name: str, kind: bytes, problem: str
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    data = b"x"
    if kind == tarfile.REGTYPE:
        info.size = 1
    else:
        info.linkname = "/etc/passwd"
    blob = tar_gz([(info, data if kind == tarfile.REGTYPE else None)])
    with pytest.raises(archive.ArchiveError, match=problem):
        archive.unpack(blob, archive.sha256(blob), tmp_path / "out", "0" * 16)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escape.py").exists()


def test_a_host_without_the_files_fetches_them_from_the_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    factory = sessions(engine)
    web_dir, worker_dir = tmp_path / "web", tmp_path / "worker"
    _, version = stored_package(package_root(web_dir, SLUG, "x"))
    root = package_root(web_dir, SLUG, version)
    package_root(web_dir, SLUG, "x").rename(root)
    with transaction(factory) as session:
        digest = store_archive(session, root)
        assert store_archive(session, root) == digest  # kept once per content
        session.add(
            ExercisePackage(
                slug=SLUG,
                version=version,
                title="Toy sum",
                origin="upload",
                path=str(root.relative_to(web_dir)),
                state=PackageState.PUBLISHED,
                archive_sha256=digest,
            )
        )
    catalog = load_catalog(FIXTURES / "catalog" / "exercises", FIXTURES / "catalog" / "solutions")
    library = Library(catalog, worker_dir)
    assert library.stored(SLUG, version) is None  # not on this host, and no database asked
    exercise = library.stored(SLUG, version, factory)
    assert exercise is not None and exercise.version == version
    copy = package_root(worker_dir, SLUG, version)
    assert content_hash(*exercise_folders(copy)) == version

    # a damaged copy on a host is set aside and fetched again
    (copy / "solutions" / SLUG / "solution.py").write_text("tampered = True\n")
    again = Library(catalog, worker_dir).stored(SLUG, version, factory)
    assert again is not None and content_hash(*exercise_folders(copy)) == version

    # an archive altered in the database is refused, not graded against
    shutil.rmtree(copy)
    with transaction(factory) as session:
        row = session.get(PackageArchive, digest)
        assert row is not None
        row.data = row.data + b"\0"
    with pytest.raises(archive.ArchiveError, match="SHA-256"):
        Library(catalog, worker_dir).stored(SLUG, version, factory)
    assert not copy.exists()


def test_uploads_kept_only_on_disk_are_stored_by_the_backfill(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    factory = sessions(engine)
    staged, version = stored_package(tmp_path / "staged")
    target = package_root(tmp_path, SLUG, version)
    target.parent.mkdir(parents=True)
    staged.rename(target)
    with transaction(factory) as session:
        for slug, ver in ((SLUG, version), ("gone", "0" * 16)):
            session.add(
                ExercisePackage(
                    slug=slug,
                    version=ver,
                    title="t",
                    origin="upload",
                    path=f"library/{slug}/{ver}",
                    state="valid",
                )
            )
    problems = backfill_archives(factory, tmp_path)
    assert len(problems) == 1 and "gone" in problems[0]
    with factory() as session:
        row = session.query(ExercisePackage).filter_by(slug=SLUG).one()
        assert row.archive_sha256 is not None and session.get(PackageArchive, row.archive_sha256) is not None
    assert backfill_archives(factory, tmp_path) == problems  # again: nothing new to store
