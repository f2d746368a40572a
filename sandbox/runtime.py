"""Where the runner's runtime lives on this host, as the sandbox should see it.

The sandbox gets the Python interpreter, the system libraries, the environment's site-packages
(read-only, with the editable-install hooks masked: they name the repository), and the runner's
own files (`grader/__init__.py`, `grader/codec.py`, `grader/runner/`). Nothing else of the
repository, its solutions, its data or its sockets is mounted.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from pathlib import Path

from sandbox.policy import RUNTIME_DIR, SITE_DIR, Layout, Mount

GRADER_DIR = Path(__file__).resolve().parent.parent / "grader"
RUNNER_FILES = ("__init__.py", "codec.py", "runner")


@functools.cache
def host_layout() -> Layout:
    """The layout for bubblewrap: host paths bound read-only at fixed places."""
    mounts: list[Mount] = []
    made: set[str] = set()

    def bind(source: str, target: str, kind: str = "ro-bind") -> None:
        parts = Path(target).parts
        for i in range(2, len(parts)):
            parent = str(Path(*parts[:i]))
            if parent not in made:
                made.add(parent)
                mounts.append(Mount("dir", parent))
        mounts.append(Mount(kind, target, source))
        made.add(target)

    for lib in ("/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.isdir(lib):
            bind(lib, lib)
    for top in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            bind(os.readlink(top), top, "symlink")
        elif os.path.isdir(top):
            bind(top, top)
    for path in ("/etc/ld.so.cache", "/usr/bin/setpriv"):
        if os.path.exists(path):
            bind(path, path)

    python = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    if not prefix.startswith("/usr/"):
        bind(prefix, prefix)
    if not any(python.startswith(m.target + "/") for m in mounts if m.kind == "ro-bind"):
        bind(python, python)

    site_dirs = []
    for i, host_dir in enumerate(_site_dirs()):
        target = f"{SITE_DIR}/{i}"
        bind(host_dir, target)
        for name in _editable_hooks(host_dir):
            bind("", f"{target}/{name}", "mask")
        site_dirs.append(target)

    for name in RUNNER_FILES:
        bind(str(GRADER_DIR / name), f"{RUNTIME_DIR}/grader/{name}")
    return Layout(mounts=tuple(mounts), python=python, site_dirs=tuple(site_dirs))


def local_layout() -> Layout:
    """The layout for the unsandboxed backend: the same runner, straight from the host paths."""
    return Layout(
        mounts=(),
        python=os.path.realpath(sys.executable),
        site_dirs=tuple(_site_dirs()),
        runtime_dir=str(GRADER_DIR.parent),
    )


def _site_dirs() -> list[str]:
    seen: list[str] = []
    for key in ("purelib", "platlib"):
        path = os.path.realpath(sysconfig.get_paths()[key])
        if os.path.isdir(path) and path not in seen:
            seen.append(path)
    return seen


def _editable_hooks(site_dir: str) -> list[str]:
    return sorted(
        name
        for name in os.listdir(site_dir)
        if name.startswith("__editable__") or (name.endswith(".pth") and "editable" in name)
    )
