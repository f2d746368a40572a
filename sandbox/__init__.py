"""Sandbox backends behind one interface (`Sandbox.start(limits) -> SandboxProcess`)."""

from __future__ import annotations

from sandbox.base import Sandbox, SandboxError, SandboxProcess, SandboxUnavailable
from sandbox.policy import Limits

BACKENDS = ("docker", "bwrap", "none")


def get_backend(name: str, *, fork: bool = False) -> Sandbox:
    """The backend called `name`; "auto" picks the best one that works on this host. With `fork`,
    a bubblewrap backend forks its runners from a fork server that imported the runtime once
    (`sandbox.fork`); other backends start each runner as usual."""
    if name == "auto":
        return best_available(fork=fork)
    if name == "docker":
        from sandbox.docker import DockerSandbox

        return DockerSandbox()
    if name == "bwrap":
        from sandbox.bwrap import BwrapSandbox

        if fork:
            from sandbox.fork import ForkingBwrap

            return ForkingBwrap()
        return BwrapSandbox()
    if name == "none":
        from sandbox.none import UnsandboxedRunner

        return UnsandboxedRunner()
    raise SandboxUnavailable(f"unknown sandbox backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")


def best_available(*, fork: bool = False) -> Sandbox:
    """The safest backend that works here. Never falls back to running code unsandboxed."""
    backend = get_backend("bwrap", fork=fork)
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
