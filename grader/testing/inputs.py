"""Checks that a call leaves its inputs alone.

Arguments normally cross the pipe as copies, so whatever the submission changes in place stays
in its sandbox, unseen. `call_unchanged` sends the arguments to stay in the runner, calls the
submission with those very objects, reads them back and compares them with what was sent, here
on the trusted side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grader.remote import BoundName, RemoteObject, RunnerClient
from grader.testing.asserts import GradingFailure
from grader.testing.compare import compare


def call_unchanged(
    fn: BoundName | RemoteObject,
    *args: Any,
    names: Sequence[str] = (),
    what: str = "your function",
    hint: str = "",
    **kwargs: Any,
) -> Any:
    """`fn(*args, **kwargs)` in the submission's runner, failing when the call changed any of its
    arguments in place. `names` labels the positional arguments in the message ("cache")."""
    client = _client(fn)
    kept = [client.put(a) for a in args]
    kept_kw = {k: client.put(v) for k, v in kwargs.items()}
    out = fn(*kept, **kept_kw)
    labels = [names[i] if i < len(names) else f"argument {i + 1}" for i in range(len(args))]
    for label, sent, handle in [*zip(labels, args, kept, strict=True), *_keyed(kwargs, kept_kw)]:
        mismatch = compare(handle.read_back(), sent, rtol=0.0, atol=0.0, equal_nan=True)
        if mismatch is not None:
            raise GradingFailure(
                f"{what} changed its input `{label}` in place; it must leave its inputs as they were",
                detail=mismatch.describe(f"`{label}` after the call", reveal=True),
                hint=hint or "work on new tensors (torch.cat, clone) instead of writing into the ones given",
            )
    return out


def kept_in_runner(fn: BoundName | RemoteObject, value: Any) -> RemoteObject:
    """Send `value` to stay in the runner of `fn` (a name of the submission, or one of its
    objects) and return its handle. Pass the handle to calls, also inside a dict or a list: the
    submission gets that very object, so a tensor created with `requires_grad=True` collects its
    gradient there (read it with `handle.attr("grad")`), and `handle.read_back()` gives its
    current value. For what `call_unchanged` and a remote `backward` do not cover: parameters
    given in a dict, state threaded through several calls."""
    return _client(fn).put(value)


def view_in_runner(
    fn: BoundName | RemoteObject, value: Any, *steps: tuple[str, tuple[Any, ...]]
) -> RemoteObject:
    """`value` sent to the runner of `fn`, then each step `(method, args)` applied there to the
    result of the one before, and the last result kept: its handle. A tensor sent as an argument
    arrives contiguous, so a strided view must be made on the runner's side:
    `view_in_runner(submission.softmax, wide, ("narrow", (1, 37, 300)))` is `wide[:, 37:337]`,
    its rows `wide.stride(0)` apart, and `view_in_runner(fn, w, ("t", ()))` is `w.t()`."""
    client = _client(fn)
    handle = client.put(value)
    for method, args in steps:
        handle = client.keep(method, list(args), {}, target=handle)
    return handle


def kept_result(fn: BoundName, *args: Any, **kwargs: Any) -> RemoteObject:
    """Call `fn` (a name of the submission) and keep what it returns in the runner: a handle, for
    what does not survive the trip back (a tensor arrives contiguous):
    `kept_result(submission.softmax, view).call("is_contiguous")`."""
    return _client(fn).keep(fn.name, list(args), kwargs)


def _keyed(kwargs: dict[str, Any], kept: dict[str, RemoteObject]) -> list[tuple[str, Any, RemoteObject]]:
    return [(key, kwargs[key], kept[key]) for key in kwargs]


def _client(fn: BoundName | RemoteObject) -> RunnerClient:
    owner = fn.module if isinstance(fn, BoundName) else fn
    client: RunnerClient = object.__getattribute__(owner, "_client")
    return client
