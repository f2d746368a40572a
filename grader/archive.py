"""An uploaded exercise version as one archive, named by its content, so that any worker can
rebuild it without a disk shared with the web host.

`pack` makes a reproducible tar.gz of a stored package's `exercise/` and `solutions/` folders
(sorted names, no owners, times or modes beyond the executable bit): the same files always
give the same bytes, and the SHA-256 of those bytes names the archive. `unpack` checks that
hash before reading anything, extracts regular files and folders only (no links, devices, or
names that leave the folder), checks the version's own content hash (`grader.catalog.
content_hash`) on what came out, and moves the package into place atomically, so a half-written
or tampered copy is never loaded.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from grader.catalog import IGNORED_PARTS, content_hash

FOLDERS = ("exercise", "solutions")
MAX_UNPACKED_BYTES = 64 * 1024 * 1024  # far above any upload's limit: a guard, not a policy


class ArchiveError(Exception):
    """An archive that is not what its name or its version says; the message says which."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(root: Path) -> bytes:
    """The package stored at `root` (`root/exercise/<slug>`, `root/solutions/<slug>`) as a
    reproducible tar.gz."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for folder in FOLDERS:
            base = root / folder
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                relative = path.relative_to(root)
                if IGNORED_PARTS.intersection(relative.parts) or path.suffix == ".pyc" or path.is_symlink():
                    continue
                info = tarfile.TarInfo(relative.as_posix())
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if path.is_dir():
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
                elif path.is_file():
                    data = path.read_bytes()
                    info.size = len(data)
                    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                    tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack(data: bytes, expected_sha256: str, dest: Path, version: str) -> Path:
    """Check and extract an archive to `dest` (created atomically; left as it is when a copy is
    there already). Raises ArchiveError when the bytes or the files are not the ones named."""
    actual = sha256(data)
    if actual != expected_sha256:
        raise ArchiveError(f"the archive's SHA-256 is {actual}, not {expected_sha256}: refused")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        _extract(data, staging)
        folders = [_only_child(staging / folder) for folder in FOLDERS]
        got = content_hash(*folders)
        if got != version:
            raise ArchiveError(f"the archive holds version {got}, not {version}: refused")
        try:
            staging.rename(dest)
        except OSError:
            if not dest.is_dir():  # not another process that unpacked the same version first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _only_child(folder: Path) -> Path:
    children = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return children[0] if len(children) == 1 else folder / "-"


def _extract(data: bytes, into: Path) -> None:
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                name = PurePosixPath(info.name)
                if name.is_absolute() or ".." in name.parts or not name.parts or name.parts[0] not in FOLDERS:
                    raise ArchiveError(f"the archive holds a path outside a package: {info.name!r}")
                target = into.joinpath(*name.parts)
                if info.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif info.isfile():
                    total += info.size
                    if total > MAX_UNPACKED_BYTES:
                        raise ArchiveError("the archive unpacks to more than 64 MiB: refused")
                    source = tar.extractfile(info)
                    assert source is not None
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(source.read())
                    target.chmod(0o755 if info.mode & 0o100 else 0o644)
                else:
                    raise ArchiveError(
                        f"the archive holds something other than a file or folder: {info.name!r}"
                    )
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"the archive cannot be read: {exc}") from None
