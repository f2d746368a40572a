"""The one way to get a runner: `Runners.start` returns one ready to use (its sandbox started,
its hello received, its runtime loaded, what the runtime printed discarded), from a cold start
(`ColdStart`) or a warm pool (`grader.pool.WarmPool`); a fork server is a backend
(`sandbox.fork`), so forked runners come the same way."""

from __future__ import annotations

from typing import Protocol

from grader.remote import Output, RemoteError, RunnerClient, RunnerDied
from sandbox import Limits, Sandbox, SandboxError


class Runners(Protocol):
    def start(self, limits: Limits, *, device: str, preload: tuple[str, ...], label: str) -> RunnerClient:
        """A runner for `limits` with `preload` imported, its clock started now."""
        ...


def start_runner(
    backend: Sandbox,
    limits: Limits,
    *,
    device: str = "cpu",
    preload: tuple[str, ...] = (),
    label: str = "submission",
) -> RunnerClient:
    """Start a sandbox of `backend` and bring its runner to the point where a module can be
    loaded. Nothing of a submission has run yet, so a failure here is ours: SandboxError."""
    client = RunnerClient(backend.start(limits, device=device), limits, label=label)
    try:
        client.handshake()
        client.init(preload=list(preload), device=device)
        client.drain_output()  # what the runtime printed is not the submission's output
        client.output = Output(limit=client.output.limit)
    except (RunnerDied, RemoteError) as exc:
        client.drain_output()
        client.close()
        raise SandboxError(f"the sandbox did not start: {exc}; {client.output.text()[-500:]}") from exc
    except BaseException:
        client.close()
        raise
    return client


class ColdStart:
    """Every runner started when asked for."""

    def __init__(self, backend: Sandbox) -> None:
        self.backend = backend

    def start(self, limits: Limits, *, device: str, preload: tuple[str, ...], label: str) -> RunnerClient:
        return start_runner(self.backend, limits, device=device, preload=preload, label=label)
