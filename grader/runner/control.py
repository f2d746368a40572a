"""The fork server's control channel, the one module both ends import (standard library only: the
fork server reads it before any fork).

The worker's side (`sandbox.fork.ForkServer`) sends a `Spawn` with the runner's three pipes and
its cgroup files as descriptors; the fork server (`grader.runner.zygote`) answers `Ready` once
when it has started (or `Broken` when it cannot serve), a `Spawned` for every `Spawn`, and an
`Exited` when a runner it started has ended. Each message is one SOCK_SEQPACKET datagram of JSON
naming its `Kind`; `decode` refuses anything else by name (`ControlError`), so neither side ever
reads a field that is not there.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE = 64 * 1024


class ControlError(ValueError):
    """A datagram that is not a control message (malformed, unknown kind, wrong field types)."""


class Kind(enum.StrEnum):
    SPAWN = "spawn"
    READY = "ready"
    BROKEN = "broken"
    SPAWNED = "spawned"
    EXITED = "exited"


@dataclass(frozen=True)
class Spawn:
    """Fork a runner for request `id`, as `uid`, into the `cgroups` cgroup files sent along."""

    kind = Kind.SPAWN
    id: int
    uid: int
    cgroups: int
    disk_bytes: int
    env: dict[str, str]
    rlimits: dict[str, tuple[int, int]]  # resource name -> (soft, hard)


@dataclass(frozen=True)
class Ready:
    """The fork server has imported the runtime and serves requests."""

    kind = Kind.READY
    pid: int


@dataclass(frozen=True)
class Broken:
    """The fork server cannot serve (it started threads on import), or a request was unreadable."""

    kind = Kind.BROKEN
    message: str


@dataclass(frozen=True)
class Spawned:
    """The answer to `Spawn` `id`: the runner's host pid, or why there is none."""

    kind = Kind.SPAWNED
    id: int
    pid: int | None = None
    error: str = ""


@dataclass(frozen=True)
class Exited:
    """The runner `pid` has ended: its exit code, minus the signal that killed it, or None if
    its helper died before it could tell."""

    kind = Kind.EXITED
    pid: int
    code: int | None


Message = Spawn | Ready | Broken | Spawned | Exited
CLASSES: dict[Kind, type[Message]] = {c.kind: c for c in (Spawn, Ready, Broken, Spawned, Exited)}


def encode(message: Message) -> bytes:
    data = json.dumps({"kind": message.kind.value, **dataclasses.asdict(message)}).encode()
    if len(data) > MAX_MESSAGE:
        raise ControlError(f"a {message.kind.value} message of {len(data)} bytes is over {MAX_MESSAGE}")
    return data


def decode(data: bytes) -> Message:
    try:
        raw = json.loads(data)
        kind = Kind(raw.pop("kind"))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ControlError(f"not a control message: {exc}") from None
    cls = CLASSES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    if set(raw) - names:
        raise ControlError(f"{kind.value}: unknown fields {sorted(set(raw) - names)}")
    try:
        message = cls(**raw)
    except TypeError as exc:
        raise ControlError(f"{kind.value}: {exc}") from None
    _check_types(message)
    return message


def _check_types(message: Message) -> None:
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if not _fits(value, field.type):
            raise ControlError(f"{message.kind.value}: {field.name} is {type(value).__name__}")
    if isinstance(message, Spawn):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in message.env.items()):
            raise ControlError("spawn: env holds a value that is not a string")
        for name, pair in message.rlimits.items():
            if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(_is_int(v) for v in pair)):
                raise ControlError(f"spawn: rlimit {name} is not a (soft, hard) pair")
        object.__setattr__(message, "rlimits", {k: (int(s), int(h)) for k, (s, h) in message.rlimits.items()})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits(value: Any, annotation: Any) -> bool:
    declared = str(annotation)
    if declared == "int":
        return _is_int(value)
    if declared == "int | None":
        return value is None or _is_int(value)
    if declared == "str":
        return isinstance(value, str)
    return isinstance(value, dict)  # env and rlimits: their items are checked by _check_types
