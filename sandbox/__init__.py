"""Sandbox backends behind one interface (`Sandbox.start(limits) -> SandboxProcess`)."""

from __future__ import annotations

from sandbox.base import Sandbox, SandboxError, SandboxProcess, SandboxUnavailable
from sandbox.policy import Limits

BACKENDS = ("docker", "bwrap", "none")


def get_backend(name: str) -> Sandbox:
    """The backend called `name`; "auto" picks the best one that works on this host."""
    if name == "auto":
        return best_available()
    if name == "docker":
        from sandbox.docker import DockerSandbox

        return DockerSandbox()
    if name == "bwrap":
        from sandbox.bwrap import BwrapSandbox

        return BwrapSandbox()
    if name == "none":
        from sandbox.none import UnsandboxedRunner

        return UnsandboxedRunner()
    raise SandboxUnavailable(f"unknown sandbox backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")


def best_available() -> Sandbox:
    """The safest backend that works here. Never falls back to running code unsandboxed."""
    from sandbox.bwrap import BwrapSandbox

    backend = BwrapSandbox()
    backend.check()
    return backend


__all__ = [
    "BACKENDS",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxProcess",
    "SandboxUnavailable",
    "get_backend",
]
