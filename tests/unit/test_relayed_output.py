"""Output that a relaying backend delivers after a call's reply still counts as the public tests'."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

from grader import remote
from grader.remote import RunnerClient
from sandbox import Limits


def client(backend: str, fds: list[int]) -> tuple[RunnerClient, int]:
    pipes = [os.pipe() for _ in range(3)]
    fds += [fd for pipe in pipes for fd in pipe]
    (_, stdin_w), (stdout_r, _), (stderr_r, stderr_w) = pipes
    process = SimpleNamespace(backend=backend, stdin=stdin_w, stdout=stdout_r, stderr=stderr_r)
    return RunnerClient(cast(Any, process), Limits()), stderr_w


@pytest.mark.parametrize(("backend", "kept"), [("docker", "late public print\n"), ("bwrap", "")])
def test_late_output_of_a_relayed_backend_is_read_before_withholding(
    backend: str, kept: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "RELAY_QUIET_SECONDS", 1.0)  # room for a busy host to run the writer
    fds: list[int] = []
    runner, write_end = client(backend, fds)

    def late() -> None:
        time.sleep(0.05)  # the relay delivers after the reply
        os.write(write_end, b"late public print\n")

    writer = threading.Thread(target=late)
    writer.start()
    runner.enter_hidden()
    writer.join()
    # a direct pipe has it all by the reply: nothing is waited for, and what comes later is withheld
    assert runner.output.text() == kept
    runner.drain_output()
    assert runner.output.total == len(b"late public print\n")
    assert runner.output.withheld == (0 if kept else runner.output.total)
    for fd in fds:
        os.close(fd)
