"""Shared fixtures. Services the suite needs (bubblewrap, cgroups) are required, never skipped:
a missing one is a failure with a message saying what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.catalog import Catalog, load_catalog
from sandbox import Sandbox, SandboxUnavailable, get_backend

# exercise packages used as fixtures hold their own tests: the harness runs them, not this suite
collect_ignore = ["fixtures"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def toy_catalog() -> Catalog:
    return load_catalog(FIXTURES / "catalog" / "exercises", FIXTURES / "catalog" / "solutions")


@pytest.fixture(scope="session")
def bwrap() -> Sandbox:
    backend = get_backend("bwrap")
    try:
        backend.check()
    except SandboxUnavailable as exc:
        pytest.fail(f"the bwrap sandbox is required for this suite: {exc}")
    return backend


@pytest.fixture(scope="session", params=["bwrap", "none"])
def any_backend(request: pytest.FixtureRequest, bwrap: Sandbox) -> Sandbox:
    return bwrap if request.param == "bwrap" else get_backend("none")
