"""The runner protocol: its operations, and one frozen dataclass per request and per reply.

Both sides import this module: the harness (`grader.remote`, `grader.measurement.protocol`) sends
requests and reads replies; the runner (`grader.runner.server`) reads requests and sends replies.
It runs inside the sandbox too, so it uses the standard library only.

On the wire a message is one codec frame. Its JSON header holds the message's plain fields
(integers, floats, strings, lists of strings), checked against their declared types when read.
Fields declared `Any` are values: the codec encodes them (tensors as buffers, remote objects as
references) and the receiving side's decoder decodes them. A request's header names its `op`;
a reply's says `"ok": true` and its `reply` kind, or `"ok": false` with an `ErrorReport`.

What the runner sends is the submission's to choose: reading a reply raises `ProtocolError` for
anything that is not the reply it claims to be, and `ErrorReport.from_wire` reduces any error
report to well-formed, size-capped fields.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]


class Op(enum.StrEnum):
    """What a request asks the runner to do."""

    INIT = "init"  # load the runtime (torch, its thread count, the device)
    GUARD = "guard"  # block the exercise's forbidden calls and operators
    LOAD = "load"  # write and import the submission's module
    GETATTR = "getattr"  # read an attribute (or the object itself) back
    SETATTR = "setattr"
    CALL = "call"
    CALL_WARNED = "call_warned"  # call, and say which warnings the call emitted
    KEEP = "keep"  # call and keep the result in the runner: answer a handle
    PUT = "put"  # keep a value the harness sent
    TAKE = "take"  # the next items of an iterator
    ITER = "iter"  # every item of an iterable, up to a limit
    BLOCK = "block"  # a timed block of calls, garbage collection off
    PROBE = "probe"  # one call under the in-runner probe
    BACKWARD = "backward"  # call, then backpropagate through the output
    SETTLE = "settle"  # collect garbage and trim the heap before a memory measurement
    BUILD = "build"  # compile the kernels launched so far for a GPU architecture
    DEVICE_TIMES = "device_times"  # calls timed one by one on the device, between synchronisations


class ProtocolError(ValueError):
    """A header that is not the message it claims to be."""


# ---------------------------------------------------------------------- fields


def _is_int(value: Any) -> bool:
    return type(value) is int


def _int_in(value: Any, low: int, high: int) -> int | None:
    return value if type(value) is int and low <= value <= high else None


def _is_str(value: Any) -> bool:
    return type(value) is str


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _is_strings(value: Any) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "int | None": _optional(_is_int),
    "str": _is_str,
    "str | None": _optional(_is_str),
    "float": lambda value: type(value) in (int, float),
    "tuple[str, ...]": _is_strings,
}


@dataclass(frozen=True)
class _Field:
    name: str
    check: Callable[[Any], bool] | None  # None: a value, carried by the codec


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields(cls: type) -> tuple[_Field, ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple(
            _Field(f.name, None if f.type == "Any" else CHECKS[str(f.type)]) for f in dataclasses.fields(cls)
        )
    return found


class Message:
    """A request or a reply: a frozen dataclass whose fields are plain or values (see above)."""

    def fields_to_wire(self, encode: Encode) -> dict[str, Any]:
        header: dict[str, Any] = {}
        for spec in _fields(type(self)):
            value = getattr(self, spec.name)
            if spec.check is None:
                header[spec.name] = encode(value)
            else:
                header[spec.name] = list(value) if isinstance(value, tuple) else value
        return header

    @classmethod
    def fields_from_wire(cls, header: dict[str, Any], decode: Decode) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for spec in _fields(cls):
            if spec.name not in header:
                raise ProtocolError(f"{cls.__name__} without {spec.name}")
            value = header[spec.name]
            if spec.check is None:
                found[spec.name] = decode(value)
            elif spec.check(value):
                found[spec.name] = tuple(value) if type(value) is list else value
            else:
                raise ProtocolError(f"{cls.__name__}.{spec.name} is not a {type(value).__name__}")
        return found


# ---------------------------------------------------------------------- replies


class Reply(Message):
    KIND: ClassVar[str]

    def to_wire(self, encode: Encode) -> dict[str, Any]:
        return {"ok": True, "reply": self.KIND, **self.fields_to_wire(encode)}


@dataclass(frozen=True)
class Hello(Reply):
    """The runner's first words, unasked: it is up and reading requests."""

    KIND: ClassVar[str] = "hello"
    pid: int
    python: str


@dataclass(frozen=True)
class Runtime(Reply):
    """What `Init` loaded."""

    KIND: ClassVar[str] = "runtime"
    torch: str | None
    device: str
    seconds: float  # how long loading took, as the runner timed it


@dataclass(frozen=True)
class Loaded(Reply):
    """The submission's module is imported: its public names."""

    KIND: ClassVar[str] = "loaded"
    names: tuple[str, ...]


@dataclass(frozen=True)
class Done(Reply):
    KIND: ClassVar[str] = "done"


@dataclass(frozen=True)
class Value(Reply):
    KIND: ClassVar[str] = "value"
    value: Any


@dataclass(frozen=True)
class Kept(Reply):
    """A value stays in the runner: its handle."""

    KIND: ClassVar[str] = "kept"
    ident: int


@dataclass(frozen=True)
class Warned(Reply):
    KIND: ClassVar[str] = "warned"
    value: Any
    warnings: tuple[str, ...]  # the nearest builtin category of each warning, in order


@dataclass(frozen=True)
class Probed(Reply):
    KIND: ClassVar[str] = "probed"
    value: Any
    stats: Any  # what the call allocated and computed (runner-reported)


@dataclass(frozen=True)
class Backpropagated(Reply):
    KIND: ClassVar[str] = "gradients"
    output: Any
    input_grads: Any  # the gradient of each tensor argument that required one, in order
    param_grads: Any  # parameter name -> gradient, when a torch module was called


@dataclass(frozen=True)
class ErrorReport:
    """What the submission raised, as the runner reports it: plain data, reduced by `from_wire`
    to well-formed, size-capped fields whatever the runner sent."""

    type: str = "Exception"
    message: str = ""
    bases: tuple[str, ...] = ()  # the builtin classes it derives from, nearest first
    frames: tuple[tuple[int, str], ...] = ()  # (line, function) of the submission's own frames
    exit_code: int | None = None  # of a SystemExit
    errno: int | None = None  # of an OSError
    stage: str | None = None  # a step of the runner's own that failed (see STAGES)

    STAGES: ClassVar[tuple[str, ...]] = ("lookup", "no-grad", "backward")
    MAX_FRAMES: ClassVar[int] = 40
    MAX_MESSAGE: ClassVar[int] = 4000

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "bases": list(self.bases),
            "frames": [list(frame) for frame in self.frames],
            "exit_code": self.exit_code,
            "errno": self.errno,
            "stage": self.stage,
        }

    @classmethod
    def from_wire(cls, error: Any) -> ErrorReport:
        if not isinstance(error, dict):
            raise ProtocolError("a failed reply without an error")

        def text(value: Any, limit: int) -> str:
            return value[:limit] if isinstance(value, str) else ""

        frames = []
        raw_frames = error.get("frames")
        for frame in raw_frames[-cls.MAX_FRAMES :] if isinstance(raw_frames, list) else []:
            if (
                isinstance(frame, list)
                and len(frame) == 2
                and _is_int(frame[0])
                and isinstance(frame[1], str)
            ):
                frames.append((frame[0], frame[1][:100]))
        bases = error.get("bases")
        code, number, stage = error.get("exit_code"), error.get("errno"), error.get("stage")
        return cls(
            type=text(error.get("type"), 100) or "Exception",
            message=text(error.get("message"), cls.MAX_MESSAGE),
            bases=tuple(b[:100] for b in bases[:20] if isinstance(b, str)) if isinstance(bases, list) else (),
            frames=tuple(frames),
            exit_code=_int_in(code, 0, 255),
            errno=_int_in(number, 1, 4095),
            stage=stage if stage in cls.STAGES else None,
        )


@dataclass(frozen=True)
class Failed:
    """The request failed: the submission raised (or exited, `fatal`)."""

    error: ErrorReport
    fatal: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"ok": False, "fatal": self.fatal, "error": self.error.to_wire()}


@dataclass(frozen=True)
class Built(Reply):
    KIND: ClassVar[str] = "built"
    kernels: Any  # per kernel launched: what compiling it for the architecture gave (runner-reported)


@dataclass(frozen=True)
class Timed(Reply):
    KIND: ClassVar[str] = "timed"
    outputs: Any  # every call's output, in order
    times_ns: Any  # every call's time on the device, in order


REPLIES: dict[str, type[Reply]] = {
    cls.KIND: cls
    for cls in (Hello, Runtime, Loaded, Done, Value, Kept, Warned, Probed, Backpropagated, Built, Timed)
}


def read_reply(header: dict[str, Any], decode: Decode) -> Reply | Failed:
    """The reply a header holds, its values decoded; ProtocolError if it holds none."""
    ok = header.get("ok")
    if ok is False:
        return Failed(ErrorReport.from_wire(header.get("error")), header.get("fatal") is True)
    cls = REPLIES.get(header["reply"]) if ok is True and type(header.get("reply")) is str else None
    if cls is None:
        raise ProtocolError("a header that is no reply")
    return cls(**cls.fields_from_wire(header, decode))


# ---------------------------------------------------------------------- requests

R = TypeVar("R", bound=Reply)


class Request(Message, Generic[R]):
    OP: ClassVar[Op]
    REPLY: ClassVar[type[Reply]]

    def to_wire(self, encode: Encode) -> dict[str, Any]:
        return {"op": self.OP.value, **self.fields_to_wire(encode)}


@dataclass(frozen=True)
class Init(Request[Runtime]):
    OP: ClassVar[Op] = Op.INIT
    REPLY: ClassVar[type[Reply]] = Runtime
    preload: tuple[str, ...]  # modules to import before anything else
    threads: int
    device: str  # "cpu", or "cuda" for the one GPU the sandbox was given


@dataclass(frozen=True)
class Guard(Request[Done]):
    OP: ClassVar[Op] = Op.GUARD
    REPLY: ClassVar[type[Reply]] = Done
    forbidden: tuple[str, ...]  # dotted names of calls that raise once blocked
    forbidden_ops: tuple[str, ...]  # patterns of torch operators ("aten::*softmax*")


@dataclass(frozen=True)
class Load(Request[Loaded]):
    OP: ClassVar[Op] = Op.LOAD
    REPLY: ClassVar[type[Reply]] = Loaded
    module: str
    source: str


@dataclass(frozen=True)
class GetAttr(Request[Value]):
    """Object `obj` (0: the module), or its dotted attribute `attr`."""

    OP: ClassVar[Op] = Op.GETATTR
    REPLY: ClassVar[type[Reply]] = Value
    obj: int
    attr: str | None = None


@dataclass(frozen=True)
class SetAttr(Request[Done]):
    OP: ClassVar[Op] = Op.SETATTR
    REPLY: ClassVar[type[Reply]] = Done
    obj: int
    attr: str
    value: Any


@dataclass(frozen=True)
class Invocation:
    """A call of object `obj` (0: the module) or of its dotted attribute `attr`."""

    obj: int
    attr: str | None
    args: Any
    kwargs: Any


@dataclass(frozen=True)
class Call(Invocation, Request[Value]):
    OP: ClassVar[Op] = Op.CALL
    REPLY: ClassVar[type[Reply]] = Value


@dataclass(frozen=True)
class CallWarned(Invocation, Request[Warned]):
    OP: ClassVar[Op] = Op.CALL_WARNED
    REPLY: ClassVar[type[Reply]] = Warned


@dataclass(frozen=True)
class Keep(Invocation, Request[Kept]):
    """Call, and keep the result (item `pick` of it) in the runner, whatever it is."""

    OP: ClassVar[Op] = Op.KEEP
    REPLY: ClassVar[type[Reply]] = Kept
    pick: int | None = None


@dataclass(frozen=True)
class Put(Request[Kept]):
    OP: ClassVar[Op] = Op.PUT
    REPLY: ClassVar[type[Reply]] = Kept
    value: Any


@dataclass(frozen=True)
class Take(Request[Value]):
    """The next `count` items of the iterator over `obj` (one kept per object, so calls continue it)."""

    OP: ClassVar[Op] = Op.TAKE
    REPLY: ClassVar[type[Reply]] = Value
    obj: int
    count: int


@dataclass(frozen=True)
class Iter(Request[Value]):
    OP: ClassVar[Op] = Op.ITER
    REPLY: ClassVar[type[Reply]] = Value
    obj: int
    attr: str | None = None
    limit: int = 100_000


@dataclass(frozen=True)
class Block(Request[Value]):
    """Timed calls: `calls` is a list of (target or None for the module, attr, args, kwargs)."""

    OP: ClassVar[Op] = Op.BLOCK
    REPLY: ClassVar[type[Reply]] = Value
    calls: Any


@dataclass(frozen=True)
class Probe(Invocation, Request[Probed]):
    OP: ClassVar[Op] = Op.PROBE
    REPLY: ClassVar[type[Reply]] = Probed


@dataclass(frozen=True)
class Backward(Invocation, Request[Backpropagated]):
    """Call, then backpropagate `grad_output` (None for a scalar output) through the result."""

    OP: ClassVar[Op] = Op.BACKWARD
    REPLY: ClassVar[type[Reply]] = Backpropagated
    grad_output: Any = None


@dataclass(frozen=True)
class Settle(Request[Done]):
    OP: ClassVar[Op] = Op.SETTLE
    REPLY: ClassVar[type[Reply]] = Done


@dataclass(frozen=True)
class Build(Request[Built]):
    """Compile every Triton kernel launched so far, with the argument types and constexprs of its
    launches, for a GPU of compute capability `arch` (90: Hopper); no GPU is needed."""

    OP: ClassVar[Op] = Op.BUILD
    REPLY: ClassVar[type[Reply]] = Built
    arch: int


@dataclass(frozen=True)
class DeviceTimes(Request[Timed]):
    """Calls (as in `Block`) timed one at a time: before each, the L2 cache is flushed and the
    device synchronised; each call's time runs until the whole device is idle again."""

    OP: ClassVar[Op] = Op.DEVICE_TIMES
    REPLY: ClassVar[type[Reply]] = Timed
    calls: Any


REQUESTS: dict[str, type[Request[Any]]] = {
    cls.OP.value: cls
    for cls in (
        Init,
        Guard,
        Load,
        GetAttr,
        SetAttr,
        Call,
        CallWarned,
        Keep,
        Put,
        Take,
        Iter,
        Block,
        Probe,
        Backward,
        Settle,
        Build,
        DeviceTimes,
    )
}


def read_request(header: dict[str, Any], decode: Decode) -> Request[Any]:
    """The request a header holds, its values decoded; ProtocolError if it holds none."""
    cls = REQUESTS.get(header["op"]) if type(header.get("op")) is str else None
    if cls is None:
        raise ProtocolError(f"unknown op {header.get('op')!r}")
    return cls(**cls.fields_from_wire(header, decode))
