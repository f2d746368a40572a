"""Sandbox backends behind one interface (`Sandbox.start(limits) -> SandboxProcess`).

This is the one place that knows the backends by name. Whatever runs code that is not the
caller's own (every grading of a submission) gets its backend from `select_backend`, which
refuses `none` for it.
"""

from __future__ import annotations

from sandbox.base import Sandbox, SandboxError, SandboxProcess, SandboxRefused, SandboxUnavailable
from sandbox.policy import Limits

BACKENDS = ("docker", "bwrap", "none")
AUTO = ("bwrap", "docker")  # what "auto" tries, in order: bwrap starts runners faster; never none


def select_backend(name: str, *, untrusted: bool, fork: bool = False) -> Sandbox:
    """The backend called `name` ("auto": the first of `AUTO` that works here), checked to work.

    `untrusted`: the code to run is not the caller's own (a student's submission, say), so `none`
    is refused with SandboxRefused. With `fork`, a bubblewrap backend forks its runners from a
    fork server that imported the runtime once (`sandbox.fork`)."""
    if name == "none" and untrusted:
        raise SandboxRefused(
            "sandbox 'none' runs code unsandboxed and is refused for students' code: use auto, bwrap "
            "or docker (only `grader exercise validate --sandbox none` runs your own solutions without one)"
        )
    if name == "auto":
        return best_available(fork=fork)
    backend = get_backend(name, fork=fork)
    backend.check()
    return backend


def best_available(*, fork: bool = False) -> Sandbox:
    """The first backend of `AUTO` that works here, checked. Never falls back to running code
    unsandboxed: with none working, SandboxUnavailable says why each did not."""
    reasons = []
    for name in AUTO:
        backend = get_backend(name, fork=fork)
        try:
            backend.check()
        except SandboxUnavailable as exc:
            backend.close()
            reasons.append(f"{name}: {exc}")
            continue
        return backend
    raise SandboxUnavailable("no sandbox works here; " + "; ".join(reasons))


def get_backend(name: str, *, fork: bool = False) -> Sandbox:
    """The backend called `name`, unchecked, with no question asked about whose code it will
    run: for tests and benchmarks. Gradings use `select_backend`."""
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
    raise SandboxRefused(f"unknown sandbox {name!r}; choose one of: auto, {', '.join(BACKENDS)}")


__all__ = [
    "AUTO",
    "BACKENDS",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxProcess",
    "SandboxRefused",
    "SandboxUnavailable",
    "get_backend",
    "select_backend",
]
