"""The harness's side of the runner protocol: requests with deadlines, and remote proxies.

Everything the runner says is untrusted. Frames are size-capped before they are read, values are
decoded as plain data, the runner's output is drained and capped while we wait, and a runner that
dies, stalls or floods is killed and classified (timeout, memory, output, crash) from outside.
"""

from __future__ import annotations

import builtins
import functools
import os
import select
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, cast

from grader import codec
from grader.runner import messages
from grader.runner.messages import ErrorReport
from grader.verdict import Status
from sandbox import Limits, SandboxProcess

STARTUP_SECONDS = 60.0  # CPU time for the runner to start and load its runtime (ours, not the submission's)
# Time limits count the sandbox's CPU time, so a verdict does not depend on what else the host is
# doing. A wall-clock backstop catches a submission that waits instead of computing: this many
# times the CPU limit, plus WALL_SLACK_SECONDS, enough for a loaded host that shares out its cores.
WALL_FACTOR = 4.0
WALL_SLACK_SECONDS = 10.0
# Docker relays the runner's pipes through its daemon: what a call printed can arrive after the
# call's reply. Before the hidden tests begin, such output is read until the pipe has been quiet
# this long (at most RELAY_WAIT_SECONDS), so that it still counts as the public tests' own.
RELAYED_BACKENDS = frozenset({"docker"})
RELAY_QUIET_SECONDS = 0.2
RELAY_WAIT_SECONDS = 2.0
CLOCK_CHECK_SECONDS = (0.02, 0.25)  # how often the clocks are read while waiting, at least and at most
OUTPUT_KEPT = 32 * 1024
R = TypeVar("R", bound=messages.Reply)


@dataclass
class Death:
    """Why a runner stopped answering, as seen from outside. `message` is the same whatever the
    submission did; `full` adds what it controls (an exit code, a signal, what broke in a frame),
    shown only when the runner died before the hidden tests began."""

    status: Status
    message: str
    full: str = ""
    hidden: bool = False  # died while a hidden test was running

    def shown(self) -> str:
        return self.message if self.hidden or not self.full else self.full


class RunnerDied(Exception):
    """The runner is gone; every later request fails the same way."""

    def __init__(self, death: Death, origin: str = "submission") -> None:
        super().__init__(death.message)
        self.death = death
        self.origin = origin


@dataclass(frozen=True)
class Lookup:
    """A request that failed before or after the submission's code ran, in a step of our own:
    the name the test asked for is not there, or the output it asked to backpropagate through
    has no gradient. Said in the harness's words, with the harness's own name for the target."""

    kind: str  # a stage of ErrorReport.STAGES: "lookup" | "no-grad" | "backward"
    name: str

    def explain(self) -> str:
        if self.kind == "lookup":
            return f"your code does not define `{self.name}`: define it with the signature from the skeleton"
        if self.kind == "no-grad":
            return (
                f"the output of {self.name} is not connected to the inputs' gradients "
                "(it does not require grad)"
            )
        return f"backpropagating through the output of {self.name} failed"

    @property
    def hint(self) -> str:
        if self.kind == "lookup":
            return "keep every function and class of the skeleton, with the same names"
        return (
            "compute the output from the inputs with differentiable torch operations: no .detach(), "
            ".item(), .numpy(), torch.no_grad() or in-place changes of tensors autograd still needs"
        )


class RemoteError(Exception):
    """The submission's code raised. Subclasses also derive from the builtin exception the
    submission's exception derives from, so `pytest.raises(ValueError)` works as expected."""

    info: ErrorReport
    origin: str = "submission"
    lookup: Lookup | None = None  # set when the failure was in a step of ours (see Lookup)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def type_name(self) -> str:
        return self.info.type

    @property
    def remote_message(self) -> str:
        return self.info.message

    @property
    def frames(self) -> list[tuple[int, str]]:
        """(line, function) of the submission's own frames; well-formed by `ErrorReport.from_wire`."""
        return list(self.info.frames)

    @property
    def builtin_type(self) -> str:
        """The nearest builtin exception type: what a hidden test may name (the submission's own
        class names are its to choose, and could carry data)."""
        for name in self.info.bases:
            if isinstance(getattr(builtins, name, None), type):
                return name
        return "Exception"


_ERROR_CLASSES: dict[str, type[RemoteError]] = {}
# builtin bases a remote exception may take: not the ones that steer iteration (a StopIteration
# raised from a check would quietly end the loop that runs it)
_UNSAFE_BASES = {"StopIteration", "StopAsyncIteration", "ExceptionGroup", "BaseExceptionGroup"}


def remote_error(info: ErrorReport) -> RemoteError:
    """The harness's stand-in for what the submission raised. Built from plain data only, and
    never failing: a builtin base that cannot be rebuilt from a message gives a plain RemoteError."""
    text = f"{info.type}: {info.message}"
    cls = _error_class(info.bases)
    try:
        err = cls(text)
    except Exception:  # noqa: BLE001 - builtins with other constructors (UnicodeDecodeError)
        try:
            err = cls.__new__(cls, text)
            err.args = (text,)
        except Exception:  # noqa: BLE001 - and those that cannot be made from a message at all
            err = RemoteError(text)
    err.info = info
    return err


def _error_class(bases: tuple[str, ...]) -> type[RemoteError]:
    base: type[BaseException] = Exception
    for name in bases:
        candidate = getattr(builtins, name, None)
        if isinstance(candidate, type) and issubclass(candidate, Exception) and name not in _UNSAFE_BASES:
            base = candidate
            break
    cls = _ERROR_CLASSES.get(base.__name__)
    if cls is None:
        try:
            cls = (
                type(f"Remote{base.__name__}", (RemoteError, base), {})
                if base is not Exception
                else RemoteError
            )
        except TypeError:  # a builtin that cannot be subclassed together with RemoteError
            cls = RemoteError
        _ERROR_CLASSES[base.__name__] = cls
    return cls


@dataclass(frozen=True)
class File:
    """A file for the submission: the runner writes it into its work dir and passes its path, or,
    with `open=True`, the file itself opened for reading as UTF-8 text (an iterable of lines)."""

    data: bytes
    name: str = "input.txt"
    open: bool = False


@dataclass
class Output:
    """What the submission printed: the first `kept` bytes, and how much there was in all.

    Once `withhold()` is called (when the hidden tests start), output is counted against the
    limit but no longer kept: a submission could print the hidden inputs."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    total: int = 0
    withheld: int = 0
    _withholding: bool = False

    def add(self, chunk: bytes) -> bool:
        """Record a chunk; False once the total exceeds the limit."""
        self.total += len(chunk)
        if self._withholding:
            self.withheld += len(chunk)
        else:
            room = OUTPUT_KEPT - len(self.data)
            if room > 0:
                self.data += chunk[:room]
        return self.total <= self.limit

    def withhold(self) -> None:
        self._withholding = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total - self.withheld > len(self.data)


@dataclass
class _Clock:
    """The limits of one exchange with the runner, and the time it has spent waiting on its own."""

    call_ns: int | None  # CPU ns the call may use; None: no CPU clock (the runner is not found yet)
    lifetime_end_ns: int  # the sandbox's CPU reading at which its whole budget is spent
    cpu_seconds: float  # the call's limit, as its message names it
    wall_deadline: float  # time.monotonic() of the wall-clock backstop
    backstop_seconds: float
    # the sandbox's CPU time when the exchange began: read before sending for a timed exchange;
    # otherwise at the first look at the clocks (an answer within CLOCK_CHECK_SECONDS reads no
    # clock at all, and the few ms before that look are not counted against the call's limit)
    cpu_start: int | None = None
    lifetime: bool = False  # the sandbox's lifetime budget, not the call's, was the nearer limit
    waited: float = 0.0  # seconds every thread of the sandbox was seen asleep, before the reply began
    last_seen_waiting: float | None = None  # time.monotonic() of the last look that saw it asleep
    replying: bool = False  # the reply's first byte has come: from then on the runner waits on us

    def look(self, process: SandboxProcess) -> None:
        """Count the time since the last look as waiting when both looks found the sandbox asleep."""
        now = time.monotonic()
        if self.replying or self.call_ns is None or not process.waiting():
            self.last_seen_waiting = None
            return
        if self.last_seen_waiting is not None:
            self.waited += now - self.last_seen_waiting
        self.last_seen_waiting = now

    def cpu_left(self, process: SandboxProcess) -> float:
        """CPU ns left to the exchange: the call's limit, or what the sandbox has left if less."""
        if self.call_ns is None:
            return 1e18
        now = process.cpu_ns()
        if self.cpu_start is None:
            self.cpu_start = now
        call_left, lifetime_left = self.cpu_start + self.call_ns - now, self.lifetime_end_ns - now
        self.lifetime = lifetime_left < call_left
        return min(call_left, lifetime_left)


class RunnerClient:
    """One runner in one sandbox, driven by the harness."""

    def __init__(self, process: SandboxProcess, limits: Limits, label: str = "submission") -> None:
        self.label = label
        self.process = process
        self.limits = limits
        self.caps = codec.reply_caps(limits.message_mb * 1024 * 1024)
        self.output = Output(limit=limits.output_kb * 1024)
        self.death: Death | None = None
        self.hidden = False  # a hidden test is running: what the runner controls stays out of words
        self.cpu_started: int | None = None  # read once the runner is found (see handshake)
        self.runtime = messages.Runtime(torch=None, device="cpu", seconds=0.0)  # what `init` reported
        self.restart_clock()
        self.setups: dict[Any, RemoteObject] = {}  # per-side objects made for measured calls
        for fd in (process.stdin, process.stdout, process.stderr):
            os.set_blocking(fd, False)

    # ------------------------------------------------------------------ lifecycle

    def restart_clock(self) -> None:
        """Start the sandbox's time limits now (a runner taken from a warm pool has been waiting):
        `cpu_seconds` of CPU time, and `wall_seconds` of wall time as the backstop."""
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.wall_seconds
        if self.cpu_started is not None:
            self.cpu_started = self.process.cpu_ns()

    def handshake(self) -> messages.Hello:
        # the runner's CPU clock cannot be read before it says hello: until then, wall time only
        clock = self._clock(STARTUP_SECONDS, cpu=False)
        what = "starting the sandbox"
        header, buffers = self._receive(clock, what)
        hello = cast(messages.Hello, self._read(header, buffers, clock.wall_deadline, messages.Hello, what))
        self.process.locate_runner()
        self.cpu_started = self.process.cpu_ns()
        return hello

    def init(self, *, preload: list[str], device: str) -> messages.Runtime:
        """Load the runtime (`preload`, torch on `device`, one thread); what it reports (torch's
        version, the device, the seconds it took) is kept as `runtime`."""
        request = messages.Init(preload=tuple(preload), threads=1, device=device)
        info = self.request(request, timeout=STARTUP_SECONDS, what="loading the runtime")
        self.runtime = info
        # the runtime alone, before any submission code, as each memory source sees it
        self.process.keep_memory_baseline()
        self.restart_clock()  # the sandbox's time limits are the submission's: they start now
        return info

    def guard(self, *, forbidden: list[str], forbidden_ops: list[str]) -> None:
        """Block the exercise's forbidden calls and operators, before the submission is loaded."""
        if forbidden or forbidden_ops:
            request = messages.Guard(forbidden=tuple(forbidden), forbidden_ops=tuple(forbidden_ops))
            self.request(request, timeout=STARTUP_SECONDS, what="loading the runtime")

    def load(self, module: str, source: str) -> list[str]:
        loaded = self.request(messages.Load(module=module, source=source), what="importing your module")
        return list(loaded.names)

    def keep(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        pick: int | None = None,
        target: RemoteObject | None = None,
    ) -> RemoteObject:
        """Call `name` of the module (of `target`, an object kept in this runner, when given) and
        keep the result (item `pick` of it) in the runner, whatever it is: a handle to it, for
        later calls made on this side only."""
        obj = 0 if target is None else target.ident
        request = messages.Keep(obj=obj, attr=name, args=args, kwargs=kwargs, pick=pick)
        kept = self.request(request, what=f"setting up {name}")
        return RemoteObject(self, kept.ident, "kept")

    def enter_hidden(self) -> None:
        """The hidden tests begin: what the submission printed so far is its to see; what it
        prints from here on, and how it dies, could carry the hidden inputs."""
        if getattr(self.process, "backend", "") in RELAYED_BACKENDS:
            self._await_relayed_output()
        self.drain_output()
        self.output.withhold()
        self.hidden = True

    def put(self, value: Any) -> RemoteObject:
        """Send `value` to stay in the runner: pass the handle to calls (the submission gets that
        very object, so what it changes in place stays changed) and read it back with `fetch`."""
        kept = self.request(messages.Put(value), what="sending an input")
        return RemoteObject(self, kept.ident, "input")

    def close(self) -> None:
        self.drain_output()
        self.process.close()

    def _await_relayed_output(self) -> None:
        deadline = time.monotonic() + RELAY_WAIT_SECONDS
        poller = select.poll()
        poller.register(self.process.stderr, select.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            if not poller.poll(int(min(RELAY_QUIET_SECONDS, left) * 1000)):
                return  # quiet
            try:
                chunk = os.read(self.process.stderr, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not chunk or not self.output.add(chunk):
                return

    def drain_output(self) -> None:
        while True:
            try:
                chunk = os.read(self.process.stderr, 65536)
            except (BlockingIOError, OSError):
                return
            if not chunk or not self.output.add(chunk):
                return

    # ------------------------------------------------------------------ requests

    def request(
        self, request: messages.Request[R], *, timeout: float | None = None, what: str = "a call"
    ) -> R:
        """Send one request and return its reply.

        Raises RemoteError when the submission raised, RunnerDied when the runner is gone (or
        answered anything but the reply the request asks for).
        """
        return self._exchange(request, timeout, what, timed=False)[0]

    def timed_request(
        self, request: messages.Request[R], *, timeout: float | None = None, what: str = "a call"
    ) -> tuple[R, int, int]:
        """`request`, with the runner's CPU time and the wall time from just before the request
        is sent until its whole reply has arrived (the harness's own encoding excluded)."""
        return self._exchange(request, timeout, what, timed=True)

    def _exchange(
        self, request: messages.Request[R], timeout: float | None, what: str, *, timed: bool
    ) -> tuple[R, int, int]:
        if self.death is not None:
            raise RunnerDied(self.death, self.label)
        encoder = codec.Encoder(self.caps)
        encoder.to_handle = functools.partial(_to_reference, encoder)
        parts = encoder.frame(request.to_wire(encoder.encode))
        clock = self._clock(timeout or self.limits.call_seconds)
        if timed:
            clock.cpu_start = self.process.cpu_ns()
        wall0 = time.perf_counter_ns()
        self._send(parts, clock, what)
        header, buffers = self._receive(clock, what)
        wall1 = time.perf_counter_ns()
        cpu = self.process.cpu_ns() - (clock.cpu_start or 0) if timed else 0
        reply = self._read(header, buffers, clock.wall_deadline, request.REPLY, what, request)
        return cast(R, reply), cpu, wall1 - wall0

    def _read(
        self,
        header: dict[str, Any],
        buffers: list[memoryview],
        deadline: float,
        expected: type[messages.Reply],
        what: str,
        request: messages.Request[Any] | None = None,
    ) -> messages.Reply:
        """The reply, values decoded, or the submission's error raised as a RemoteError. Whatever
        the runner sent, nothing but those two and RunnerDied leaves here."""
        try:
            decoder = codec.Decoder(buffers, self.caps, on_handle=self._proxy, deadline=deadline)
            reply = messages.read_reply(header, decoder.decode)
        except RunnerDied:
            raise
        except messages.ProtocolError as exc:
            self._die(
                Status.RUNTIME_ERROR,
                f"the runner broke the protocol while {what}",
                f"the runner broke the protocol while {what}: {exc}",
            )
        except Exception as exc:  # noqa: BLE001 - anything the runner's answer breaks is its own doing
            self._die(
                Status.RUNTIME_ERROR,
                "the runner's answer could not be decoded",
                f"the runner's answer could not be decoded: {type(exc).__name__}: {exc}",
            )
        if isinstance(reply, messages.Failed):
            raise self._error(request, reply)
        if type(reply) is not expected:
            self._die(
                Status.RUNTIME_ERROR,
                f"the runner broke the protocol while {what}",
                f"the runner broke the protocol while {what}: {reply.KIND} instead of {expected.KIND}",
            )
        return reply

    def _error(self, request: messages.Request[Any] | None, failed: messages.Failed) -> RemoteError:
        info = failed.error
        if failed.fatal:
            code = info.exit_code
            self._die(
                Status.RUNTIME_ERROR,
                "your code called sys.exit()",
                f"your code called sys.exit({code if code is not None else ''})",
            )
        err = remote_error(info)
        err.origin = self.label
        if info.stage is not None:
            err.lookup = Lookup(info.stage, _target_name(request))
        return err

    def _proxy(self, tree: dict[str, Any]) -> RemoteObject:
        return RemoteObject(self, int(tree["id"]), str(tree.get("type", "object"))[:200])

    # ------------------------------------------------------------------ transport

    def _clock(self, cpu_seconds: float, *, cpu: bool = True) -> _Clock:
        """The limits of one exchange: `cpu_seconds` of the sandbox's CPU time (and what is left
        of its lifetime's), with its wall-clock backstop."""
        now = time.monotonic()
        backstop = cpu_seconds * WALL_FACTOR + WALL_SLACK_SECONDS
        wall_deadline = min(now + backstop, self.deadline)
        if not cpu or self.cpu_started is None:
            return _Clock(None, 0, cpu_seconds, wall_deadline, backstop)
        lifetime_end = self.cpu_started + int(self.limits.cpu_seconds * 1e9)
        return _Clock(int(cpu_seconds * 1e9), lifetime_end, cpu_seconds, wall_deadline, backstop)

    def _send(self, parts: list[bytes], clock: _Clock, what: str) -> None:
        for part in parts:
            view = memoryview(part)
            while view.nbytes:
                try:
                    view = view[os.write(self.process.stdin, view) :]
                except BlockingIOError:  # the pipe is full: wait for the runner to read
                    self._wait({self.process.stdin: select.POLLOUT}, clock, what)
                except BrokenPipeError:
                    self._died_on_eof(what)

    def _receive(self, clock: _Clock, what: str) -> tuple[dict[str, Any], list[memoryview]]:
        def read_exact(n: int) -> bytearray:
            buf = bytearray(n)
            view, got = memoryview(buf), 0
            while got < n:
                self._wait({self.process.stdout: select.POLLIN}, clock, what)
                try:
                    chunk = os.readv(self.process.stdout, [view[got:]])
                except BlockingIOError:
                    continue
                if chunk == 0:
                    self._died_on_eof(what)
                got += chunk
                clock.replying = True
            return buf

        try:
            return codec.read_frame(read_exact, self.caps)
        except codec.CodecError as exc:
            self._die(
                Status.RUNTIME_ERROR,
                f"the runner's answer broke the protocol while {what}",
                f"the runner's answer broke the protocol while {what}: {exc}",
            )

    def _wait(self, want: dict[int, int], clock: _Clock, what: str) -> None:
        """Block until a wanted descriptor is ready, draining the submission's output meanwhile;
        the CPU clock is read between waits, no sooner than it could have run out."""
        poller = select.poll()
        for fd, events in want.items():
            poller.register(fd, events)
        poller.register(self.process.stderr, select.POLLIN)
        parallel = self.limits.cpus if self.process.cgroup is not None else float(os.cpu_count() or 1)
        low, high = CLOCK_CHECK_SECONDS
        check_at = time.monotonic() + low  # most answers come sooner: no clock is read for them
        while True:
            now = time.monotonic()
            ready = poller.poll(max(0, int((min(check_at, clock.wall_deadline) - now) * 1000) + 1))
            if time.monotonic() >= check_at or not ready:
                wall_left = clock.wall_deadline - time.monotonic()
                cpu_left = clock.cpu_left(self.process)
                if want.get(self.process.stdout) == select.POLLIN:
                    clock.look(self.process)
                if wall_left <= 0 or cpu_left <= 0 or clock.waited > clock.cpu_seconds:
                    self._timeout(what, clock, by_cpu=cpu_left <= 0)
                check_at = time.monotonic() + max(low, min(high, cpu_left / 1e9 / max(parallel, 1.0)))
            for fd, events in ready:
                if fd == self.process.stderr:
                    if not self._drain_once():
                        poller.unregister(self.process.stderr)
                elif events & (select.POLLIN | select.POLLOUT | select.POLLHUP | select.POLLERR):
                    return

    def _drain_once(self) -> bool:
        try:
            chunk = os.read(self.process.stderr, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        if not self.output.add(chunk):
            self._die(Status.OUTPUT_LIMIT, f"your code printed more than {self.limits.output_kb} KB")
        return True

    # ------------------------------------------------------------------ death

    def _timeout(self, what: str, clock: _Clock, *, by_cpu: bool) -> NoReturn:
        if by_cpu and clock.lifetime:
            why = f"the submission used its {self.limits.cpu_seconds:g} s of CPU time"
        elif by_cpu:
            why = f"your code used more than {clock.cpu_seconds:g} s of CPU time"
        elif clock.waited > clock.cpu_seconds:
            why = f"no answer within {clock.cpu_seconds:g} s (your code was waiting)"
        elif time.monotonic() >= self.deadline:
            why = f"the sandbox ran for {self.limits.wall_seconds:g} s, most of it waiting,"
        else:
            why = f"no answer within {clock.backstop_seconds:g} s (mostly waiting)"
        message = f"time limit: {why} while {what}"
        self._die(Status.TIMEOUT, message)

    def _died_on_eof(self, what: str) -> NoReturn:
        try:
            code = self.process.popen.wait(timeout=5)
        except Exception:  # noqa: BLE001 - a process that will not exit is killed below
            code = None
        self.drain_output()
        self._die(*classify_exit(code, self.process, what))

    def broke_protocol(self, message: str) -> NoReturn:
        """The runner answered outside the protocol: it is killed, the submission's doing."""
        self._die(Status.RUNTIME_ERROR, message)

    def _die(self, status: Status, message: str, full: str = "") -> NoReturn:
        """Record why the runner is finished, kill it, and raise RunnerDied. `message` must be the
        same whatever the submission did; what it controls goes into `full`."""
        if self.death is None:
            if self.process.oom_killed() and status is not Status.OUTPUT_LIMIT:
                status, message, full = (
                    Status.MEMORY_LIMIT,
                    f"memory limit: the submission used more than {self.limits.memory_mb} MB",
                    "",
                )
            self.death = Death(status, message, full, hidden=self.hidden)
        self.process.kill()
        raise RunnerDied(self.death, self.label)


def classify_exit(code: int | None, process: SandboxProcess, what: str) -> tuple[Status, str, str]:
    """The status of a runner that exited, the words for it, and those words with the exit code
    or signal (the submission's to choose)."""
    signum = None
    if code is not None and code < 0:
        signum = -code
    elif code is not None and process.nested and code > 128:
        signum = code - 128
    if process.oom_killed():
        return Status.MEMORY_LIMIT, "memory limit: the submission was killed for using too much memory", ""
    if signum == signal.SIGXCPU:
        return Status.TIMEOUT, "time limit: the submission used up its CPU time", ""
    if signum is not None:
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
        said = f"the runner process was killed by a signal while {what}"
        return Status.RUNTIME_ERROR, said, f"the runner process was killed by {name} while {what}"
    return (
        Status.RUNTIME_ERROR,
        f"the runner process exited while {what}: did your code call os._exit()?",
        f"the runner process exited (code {code}) while {what}: did your code call os._exit()?",
    )


def _target_name(request: messages.Request[Any] | None) -> str:
    """What a request addressed, in the harness's own words (never the runner's type names)."""
    attr = getattr(request, "attr", None)
    return attr if isinstance(attr, str) else "the object"


def _to_reference(encoder: codec.Encoder, value: Any) -> dict[str, Any]:
    if isinstance(value, RemoteObject):
        return {"t": "ref", "id": object.__getattribute__(value, "_id")}
    if isinstance(value, File):
        return {"t": "file", "name": value.name, "b": encoder.add_buffer(value.data), "open": value.open}
    raise codec.CodecError(f"cannot send a value of type {type(value).__qualname__} to the submission")


class RemoteObject:
    """An object living in the runner: attribute reads, calls and iteration go over the pipe.

    Comparison is deliberately not forwarded: a remote object is never equal to anything but
    itself, whatever the submission's `__eq__` says.
    """

    __slots__ = ("_client", "_id", "_type")

    def __init__(self, client: RunnerClient, ident: int, type_name: str) -> None:
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_id", ident)
        object.__setattr__(self, "_type", type_name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._client.request(messages.GetAttr(self._id, name), what=f"reading .{name}").value

    def read_back(self) -> Any:
        """This object's current value, sent back as plain data (a handle if it is not)."""
        return self._client.request(messages.GetAttr(self._id), what="reading an input back").value

    def attr(self, path: str) -> Any:
        """Read a dotted attribute path (`layer.attr("lora_A.grad")`) in one round trip."""
        return self._client.request(messages.GetAttr(self._id, path), what=f"reading .{path}").value

    def __setattr__(self, name: str, value: Any) -> None:
        self._client.request(messages.SetAttr(self._id, name, value), what=f"setting .{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return RemoteObject.call(self, None, *args, **kwargs)

    def call(self, attr: str | None, *args: Any, **kwargs: Any) -> Any:
        what = f"calling {attr}" if attr else "calling an object of yours"  # never the runner's type names
        return self._client.request(messages.Call(self._id, attr, list(args), kwargs), what=what).value

    def backward(
        self, *args: Any, grad_output: Any = None, attr: str | None = None, **kwargs: Any
    ) -> Gradients:
        """Call this object (or its method `attr`) in the runner, backpropagate `grad_output`
        through the output (None for a scalar), and return the output and the gradients."""
        what = f"backpropagating through {attr}" if attr else "backpropagating through an object of yours"
        request = messages.Backward(self._id, attr, list(args), kwargs, grad_output)
        found = self._client.request(request, what=what)
        if not isinstance(found.input_grads, list) or not isinstance(found.param_grads, dict):
            self._client.broke_protocol(f"the runner broke the protocol while {what}")
        return Gradients(found.output, found.input_grads, found.param_grads)

    def __iter__(self) -> Iterator[Any]:
        items = self._client.request(messages.Iter(self._id), what="iterating").value
        if not isinstance(items, list):
            self._client.broke_protocol("the runner did not answer a list of items")
        return iter(items)

    def take(self, count: int) -> list[Any]:
        """The next `count` items (fewer at the end) of this remote iterator, in one round trip:
        for consuming a generator piece by piece, without ever holding all of it."""
        items = self._client.request(messages.Take(self._id, count), what="iterating").value
        if not isinstance(items, list):
            self._client.broke_protocol("the runner did not answer a list of items")
        return items

    def call_with_warnings(self, attr: str | None, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
        """Call, and also return the warnings the call emitted, as the names of their nearest
        builtin warning categories (the submission's own class names could carry data)."""
        request = messages.CallWarned(self._id, attr, list(args), kwargs)
        reply = self._client.request(request, what=f"calling {attr or 'it'}")
        return reply.value, [w for w in reply.warnings if w.isidentifier()][:100]

    def __len__(self) -> int:
        try:
            size = RemoteObject.call(self, "__len__")
        except AttributeError:
            raise TypeError(f"{self._type} has no len()") from None
        if type(size) is not int:
            raise TypeError("__len__ did not return an int")
        return size

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    @property
    def ident(self) -> int:
        return self._id

    def __repr__(self) -> str:
        return f"<remote {self._type} #{self._id}>"


@dataclass
class Gradients:
    """What a remote backward pass produced."""

    output: Any
    inputs: list[Any]  # the gradient of each tensor argument that required one, in order
    params: dict[str, Any]  # parameter name -> gradient, when a torch module was called


class RemoteModule(RemoteObject):
    """The submission's module. Its public names are known after import, so reading a function
    costs no round trip: `submission.f(x)` is one call."""

    __slots__ = ("_names",)

    def __init__(self, client: RunnerClient, module: str, names: list[str]) -> None:
        super().__init__(client, 0, module)
        object.__setattr__(self, "_names", frozenset(names))

    def __getattribute__(self, name: str) -> Any:
        # the submission's own names come first, even where they shadow a proxy method (`backward`)
        if not name.startswith("_") and name in object.__getattribute__(self, "_names"):
            return BoundName(self, name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingName(f"{self._type}.py does not define {name}")


class MissingName(AttributeError):
    """The submission does not define a name a test needs."""


class BoundName:
    """A name of the submission's module, resolved in the runner at call time."""

    __slots__ = ("module", "name")

    def __init__(self, module: RemoteModule, name: str) -> None:
        self.module = module
        self.name = name

    # the submission's names may shadow the proxy's methods on its module: call them explicitly
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return RemoteObject.call(self.module, self.name, *args, **kwargs)

    def value(self) -> Any:
        return RemoteObject.attr(self.module, self.name)

    def backward(self, *args: Any, grad_output: Any = None, **kwargs: Any) -> Gradients:
        return RemoteObject.backward(self.module, *args, grad_output=grad_output, attr=self.name, **kwargs)

    def __repr__(self) -> str:
        return f"<remote {self.module._type}.{self.name}>"
