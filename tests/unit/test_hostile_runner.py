"""A runner that answers anything at all: the harness's outcome is always one a submission earns.

The runner is the submission's process, so every byte it sends is the submission's to choose.
Whatever arrives (random bytes, truncated frames, frames that announce more than they carry,
well-formed frames holding nonsense, errors no builtin can be rebuilt from), each protocol step
ends in a decoded value, the submission's own exception (`RemoteError`), or `RunnerDied` with a
student status, and explaining that outcome to a learner never raises. Nothing becomes ours.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader import codec
from grader.harness.feedback import explain
from grader.harness.location import Locator
from grader.remote import RemoteError, RemoteObject, RunnerClient, RunnerDied
from grader.runner import messages
from grader.verdict import Status
from sandbox import Limits

STUDENT = {s for s in Status if s.earned}


class _Exited:
    returncode = 0

    def wait(self, timeout: float | None = None) -> int:
        return 0


class FakeRunner:
    """The harness's view of a sandbox (its three pipes), with a writer playing the runner."""

    nested = False
    backend = "fake"
    measured_by = "procfs"
    cgroup = None

    def __init__(self, reply: bytes) -> None:
        self.stdin, self._stdin_read = _pipe()
        self._stdout_write, self.stdout = _pipe()
        self._stderr_write, self.stderr = _pipe()
        self.popen = _Exited()
        threading.Thread(target=self._play, args=(reply,), daemon=True).start()
        threading.Thread(target=self._swallow, daemon=True).start()

    def _play(self, reply: bytes) -> None:
        try:
            os.write(self._stderr_write, b"noise from the submission\n")
            view = memoryview(reply)
            while view.nbytes:
                view = view[os.write(self._stdout_write, view[:65536]) :]
        except OSError:
            pass
        finally:
            for fd in (self._stdout_write, self._stderr_write):
                _close(fd)

    def _swallow(self) -> None:
        try:
            while os.read(self._stdin_read, 65536):
                pass
        except OSError:
            pass

    def locate_runner(self) -> None:
        pass

    def cpu_ns(self) -> int:
        return 0

    def waiting(self) -> bool:
        return False

    def keep_memory_baseline(self) -> None:
        pass

    def oom_killed(self) -> bool:
        return False

    def kill(self) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self.stdin, self.stdout, self.stderr, self._stdin_read):
            _close(fd)


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    return write, read


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def frame(header: Any, buffers: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    head = json.dumps(header, allow_nan=True).encode()
    sizes = b"".join(codec.LENGTH.pack(len(b)) for b in buffers)
    body = b"".join(b + bytes(codec._aligned(len(b)) - len(b)) for b in buffers)
    return codec.PREFIX.pack(codec.MAGIC, len(head), len(buffers)) + sizes + head + body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "t",
                    "v",
                    "b",
                    "id",
                    "ok",
                    "value",
                    "stats",
                    "error",
                    "fatal",
                    "type",
                    "bases",
                    "frames",
                    "message",
                    "exit_code",
                    "errno",
                    "stage",
                    "kept",
                    "reply",
                    "ident",
                    "names",
                    "op",
                    "dtype",
                    "shape",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
builtin_names = st.sampled_from(
    [
        "ExceptionGroup",
        "BaseExceptionGroup",
        "UnicodeDecodeError",
        "KeyError",
        "OSError",
        "StopIteration",
        "SystemExit",
        "KeyboardInterrupt",
        "GeneratorExit",
        "MemoryError",
        "AttributeError",
        "object",
        "int",
        "Warning",
        "RecursionError",
        "TimeoutError",
        "Exception",
        "BaseException",
    ]
)
errors = st.fixed_dictionaries(
    {"ok": st.just(False)},
    optional={
        "fatal": st.booleans(),
        "error": st.fixed_dictionaries(
            {},
            optional={
                "type": st.text(max_size=20) | json_values,
                "bases": st.lists(builtin_names, max_size=5) | json_values,
                "message": st.text(max_size=50) | json_values,
                "frames": st.lists(st.tuples(st.integers(-5, 10**12), st.text(max_size=10)).map(list))
                | json_values,
                "exit_code": st.integers() | json_values,
                "errno": st.integers() | json_values,
                "stage": st.sampled_from(["lookup", "no-grad", "backward", "other"]) | json_values,
            },
        ),
    },
)
successes = st.fixed_dictionaries(
    {"ok": st.just(True), "reply": st.sampled_from(sorted(messages.REPLIES)) | json_values},
    optional={
        name: json_values
        for name in ("value", "stats", "ident", "names", "warnings", "output", "input_grads", "param_grads")
    },
)
well_formed = (successes | errors | json_values).map(lambda h: frame(h)) | st.builds(
    lambda h, bufs: frame(h, bufs), successes, st.lists(st.binary(max_size=64), max_size=3)
)
replies = (
    well_formed
    | st.binary(max_size=300)
    | well_formed.flatmap(lambda f: st.integers(0, max(len(f) - 1, 0)).map(lambda n: f[:n]))  # truncated
    | st.sampled_from(
        [
            codec.PREFIX.pack(codec.MAGIC, 2**31, 0),  # a header far over the cap
            codec.PREFIX.pack(codec.MAGIC, 2, 1) + codec.LENGTH.pack(2**40) + b"{}",  # a huge payload
            codec.PREFIX.pack(codec.MAGIC, 2, 1) + codec.LENGTH.pack(50 * 2**20) + b"{}" + b"x" * 10,
            codec.PREFIX.pack(codec.MAGIC, 10**6, 0) + b"[" * 1000,
            b"GRF0" + bytes(8),
        ]
    )
)

STEPS: dict[str, Callable[[RunnerClient], Any]] = {
    "handshake": lambda c: c.handshake(),
    "init": lambda c: c.init(preload=[], device="cpu"),
    "guard": lambda c: c.guard(forbidden=["torch.nn.functional.softmax"], forbidden_ops=[]),
    "load": lambda c: c.load("attention", "x = 1\n"),
    "call": lambda c: c.request(messages.Call(0, "f", [1], {})),
    "call_warned": lambda c: RemoteObject.call_with_warnings(c.put(1), "f"),
    "getattr": lambda c: c.request(messages.GetAttr(0, "x")),
    "setattr": lambda c: c.request(messages.SetAttr(0, "x", 1)),
    "iter": lambda c: c.request(messages.Iter(2)),
    "probe": lambda c: c.request(messages.Probe(0, "f", [], {})),
    "settle": lambda c: c.request(messages.Settle()),
    "keep": lambda c: c.keep("f", [], {}),
    "put": lambda c: c.put([1, 2]),
    "take": lambda c: c.request(messages.Take(3, 2)),
    "backward": lambda c: RemoteObject.backward(c.put(1), attr="f"),
    "timed": lambda c: c.timed_request(messages.Block([])),
}
LIMITS = Limits.from_mapping({"call_seconds": 5, "cpu_seconds": 30, "wall_seconds": 30, "message_mb": 64})


@pytest.fixture(scope="module")
def locator() -> Iterator[Locator]:
    yield Locator("def f(x):\n    return x[0]\n", "attention")


@pytest.mark.parametrize("step", sorted(STEPS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=replies)
def test_any_reply_is_a_student_outcome(step: str, reply: bytes, locator: Locator) -> None:
    client = RunnerClient(FakeRunner(reply), LIMITS)  # type: ignore[arg-type]
    try:
        STEPS[step](client)
    except RunnerDied as died:
        assert died.death.status in STUDENT
        feedback = explain(died, locator=locator, hidden=True)
    except RemoteError as error:
        feedback = explain(error, locator=locator, hidden=True)
        assert feedback.shown(True) and feedback.shown(False)
    else:
        return
    finally:
        client.close()
    assert not feedback.system_error


def test_an_exception_group_is_the_submissions_error(locator: Locator) -> None:
    header = {"ok": False, "error": {"type": "ExceptionGroup", "bases": ["ExceptionGroup", "Exception"]}}
    client = RunnerClient(FakeRunner(frame(header)), LIMITS)  # type: ignore[arg-type]
    with pytest.raises(RemoteError) as info:
        STEPS["call"](client)
    client.close()
    assert explain(info.value, locator=locator, hidden=True).shown(False) == "your code raised ExceptionGroup"


def test_a_payload_is_read_as_it_arrives() -> None:
    """A frame announcing 50 MB: the harness asks for (and allocates) at most a chunk at a time,
    so a runner that announces much and sends little costs little."""
    announced = 50 * 2**20
    data = codec.PREFIX.pack(codec.MAGIC, 2, 1) + codec.LENGTH.pack(announced) + b"{}" + b"x" * 10
    asked: list[int] = []

    def read_exact(n: int) -> bytearray:
        asked.append(n)
        nonlocal data
        if len(data) < n:
            raise EOFError
        chunk, data = data[:n], data[n:]
        return bytearray(chunk)

    with pytest.raises(EOFError):
        codec.read_frame(read_exact, codec.reply_caps(64 * 2**20))
    assert max(asked) <= codec.READ_CHUNK


def test_a_truncated_payload_is_a_runtime_error() -> None:
    announce = codec.PREFIX.pack(codec.MAGIC, 2, 1) + codec.LENGTH.pack(50 * 2**20) + b"{}" + b"x" * 10
    client = RunnerClient(FakeRunner(announce), LIMITS)  # type: ignore[arg-type]
    with pytest.raises(RunnerDied) as died:
        STEPS["call"](client)
    client.close()
    assert died.value.death.status is Status.RUNTIME_ERROR


def test_a_header_over_the_reply_cap_is_refused_before_reading_it() -> None:
    big = codec.PREFIX.pack(codec.MAGIC, codec.REPLY_HEADER_BYTES + 1, 0)
    client = RunnerClient(FakeRunner(big), LIMITS)  # type: ignore[arg-type]
    with pytest.raises(RunnerDied) as died:
        STEPS["call"](client)
    client.close()
    assert died.value.death.status is Status.RUNTIME_ERROR
    assert "header" in died.value.death.full and "header" not in died.value.death.message
