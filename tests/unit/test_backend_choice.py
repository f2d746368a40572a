"""Choosing a sandbox: `none` never for students' code, on any path; "auto" is the best that works."""

from __future__ import annotations

from pathlib import Path

import pytest

import sandbox
from grader.settings import get_settings
from sandbox import SandboxRefused, SandboxUnavailable, select_backend


def test_none_is_refused_for_untrusted_code() -> None:
    with pytest.raises(SandboxRefused, match="refused for students' code"):
        select_backend("none", untrusted=True)
    with pytest.raises(SandboxUnavailable):  # what every caller already catches
        select_backend("none", untrusted=True, fork=True)


def test_none_is_allowed_for_the_callers_own_code() -> None:
    backend = select_backend("none", untrusted=False)
    assert backend.name == "none" and backend.trusted_code_only


@pytest.mark.parametrize("untrusted", [True, False])
def test_unknown_names_are_refused(untrusted: bool) -> None:
    with pytest.raises(SandboxRefused, match="unknown sandbox 'chroot'"):
        select_backend("chroot", untrusted=untrusted)


def test_auto_never_means_none() -> None:
    assert "none" not in sandbox.AUTO and sandbox.AUTO[0] == "bwrap"


def test_auto_takes_the_next_backend_when_one_does_not_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.bwrap import BwrapSandbox
    from sandbox.docker import DockerSandbox

    def broken(self: object) -> None:
        raise SandboxUnavailable("not here")

    monkeypatch.setattr(BwrapSandbox, "check", broken)
    monkeypatch.setattr(DockerSandbox, "check", lambda self: None)
    assert select_backend("auto", untrusted=True).name == "docker"
    monkeypatch.setattr(DockerSandbox, "check", broken)
    with pytest.raises(SandboxUnavailable, match="bwrap: not here; docker: not here"):
        select_backend("auto", untrusted=True)


def test_a_worker_configured_with_none_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The path a plain `rq worker` takes: WorkerContext.from_settings, configured from the environment."""
    from grader.jobs.worker import WorkerContext
    from grader.store import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'grader.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("GRADER_SANDBOX", "none")
    with pytest.raises(SandboxRefused, match="refused for students' code"):
        WorkerContext.from_settings(get_settings())
