"""The fixtures exercise tests receive. They find the grading session in the pytest config."""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from grader.harness.perf import Perf
from grader.harness.reference import LocalModule
from grader.harness.results import Results
from grader.harness.session import GradingSession
from grader.remote import RemoteModule

SESSION = pytest.StashKey[GradingSession]()
RESULTS = pytest.StashKey[Results]()


def _session(request: pytest.FixtureRequest) -> GradingSession:
    return request.config.stash[SESSION]


@pytest.fixture(scope="session")
def submission(request: pytest.FixtureRequest) -> RemoteModule:
    """The submission's module, running in the sandbox."""
    return _session(request).submission()


@pytest.fixture(scope="session")
def reference(request: pytest.FixtureRequest) -> Iterator[LocalModule]:
    """The reference solution, in this trusted process."""
    session = _session(request)
    module = LocalModule(session.reference(), session.scratch())
    yield module
    module.close()


@pytest.fixture
def perf(request: pytest.FixtureRequest) -> Perf:
    """Performance checks declared in exercise.toml."""
    return Perf(_session(request), request.config.stash[RESULTS], request.node.name)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """A seed for this test, stable for a grading's seed and the test's id."""
    node = request.node  # node ids of public and hidden tests can coincide: use the file too
    digest = hashlib.sha256(f"{_session(request).seed}:{node.path.name}:{node.name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    runtime = _session(request).runtime
    return runtime.device if runtime is not None else "cpu"


@pytest.fixture(autouse=True)
def _seeded(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
