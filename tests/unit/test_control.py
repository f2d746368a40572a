"""The fork server's control messages: each through the codec and back, anything else refused."""

from __future__ import annotations

import json

import pytest

from grader.runner import control

SPAWN = control.Spawn(
    id=7,
    uid=60123,
    cgroups=3,
    disk_bytes=64 << 20,
    env={"HOME": "/work", "OMP_NUM_THREADS": "1"},
    rlimits={"RLIMIT_CPU": (20, 21), "RLIMIT_CORE": (0, 0)},
)


@pytest.mark.parametrize(
    "message",
    [
        SPAWN,
        control.Ready(pid=4242),
        control.Broken(message="the fork server has 3 threads after its imports"),
        control.Spawned(id=7, pid=5151),
        control.Spawned(id=8, error="cannot fork: [Errno 11] Resource temporarily unavailable"),
        control.Exited(pid=5151, code=-9),
        control.Exited(pid=5152, code=None),
    ],
    ids=lambda m: type(m).__name__,
)
def test_each_message_comes_back_as_it_went(message: control.Message) -> None:
    assert control.decode(control.encode(message)) == message


def test_rlimits_come_back_as_pairs_of_ints() -> None:
    back = control.decode(control.encode(SPAWN))
    assert isinstance(back, control.Spawn) and back.rlimits["RLIMIT_CPU"] == (20, 21)


def raw(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"\xff not json", "not a control message"),
        (raw(pid=1), "not a control message"),
        (raw(kind="exec", pid=1), "not a control message"),
        (raw(kind="ready"), "ready"),
        (raw(kind="ready", pid="1"), "ready: pid is str"),
        (raw(kind="ready", pid=True), "ready: pid is bool"),
        (raw(kind="ready", pid=1, extra=2), "unknown fields"),
        (raw(kind="exited", pid=1, code=1.5), "exited: code is float"),
        (raw(kind="spawned", id=1, pid=None, error=3), "spawned: error is int"),
        (
            raw(kind="spawn", id=1, uid=2, cgroups=0, disk_bytes=1, env={"A": 1}, rlimits={}),
            "env holds a value that is not a string",
        ),
        (
            raw(kind="spawn", id=1, uid=2, cgroups=0, disk_bytes=1, env={}, rlimits={"RLIMIT_CPU": [1]}),
            "rlimit RLIMIT_CPU is not a (soft, hard) pair",
        ),
        (raw(kind="spawn", id=1, uid=2, cgroups=0, disk_bytes=1, env=[], rlimits={}), "spawn: env is list"),
    ],
)
def test_anything_else_is_refused_by_name(data: bytes, said: str) -> None:
    with pytest.raises(control.ControlError, match=said.replace("(", r"\(").replace(")", r"\)")):
        control.decode(data)


def test_a_message_over_the_datagram_size_is_refused_before_it_is_sent() -> None:
    huge = control.Broken(message="x" * control.MAX_MESSAGE)
    with pytest.raises(control.ControlError, match="over"):
        control.encode(huge)
