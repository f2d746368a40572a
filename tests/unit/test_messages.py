"""The runner protocol's messages: each survives its trip over the wire, and a header that is not
the message it claims to be is refused by name, never half-read."""

from __future__ import annotations

from typing import Any

import pytest

from grader import codec
from grader.runner import messages as m

REQUESTS: list[m.Request[Any]] = [
    m.Init(preload=("torch",), threads=1, device="cpu"),
    m.Guard(forbidden=("torch.softmax",), forbidden_ops=("aten::*softmax*",)),
    m.Load(module="attention", source="x = 1\n"),
    m.GetAttr(0, "layer.weight"),
    m.GetAttr(3),
    m.SetAttr(2, "scale", 0.5),
    m.Call(0, "f", [1, 2.5, "x"], {"k": [None, True]}),
    m.CallWarned(4, None, [], {}),
    m.Keep(0, "Model", [3], {}, pick=1),
    m.Put({"a": (1, 2)}),
    m.Take(5, 10),
    m.Iter(6, limit=7),
    m.Block([[None, "f", [1], {}]]),
    m.Probe(0, "f", [b"\x00"], {}),
    m.Backward(0, "f", [1.0], {}, grad_output=None),
    m.Settle(),
]
REPLIES: list[m.Reply] = [
    m.Hello(pid=7, python="3.11.2"),
    m.Runtime(torch="2.13.0", device="cpu", seconds=1.5),
    m.Runtime(torch=None, device="cpu", seconds=0),
    m.Loaded(names=("f", "g")),
    m.Done(),
    m.Value([1, {"x": 2}]),
    m.Kept(9),
    m.Warned(3, ("UserWarning",)),
    m.Probed(None, {"flops": 12}),
    m.Backpropagated(1.0, [2.0], {"w": 3.0}),
]


def _through_the_codec(header: dict[str, Any], encoder: codec.Encoder) -> tuple[dict[str, Any], Any]:
    parts = b"".join(encoder.frame(header))
    view = memoryview(parts)
    offset = 0

    def read_exact(n: int) -> bytearray:
        nonlocal offset
        chunk = bytearray(view[offset : offset + n])
        offset += n
        return chunk

    got, buffers = codec.read_frame(read_exact)
    return got, codec.Decoder(buffers).decode


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_a_request_reads_back_as_sent(request_: m.Request[Any]) -> None:
    encoder = codec.Encoder()
    header, decode = _through_the_codec(request_.to_wire(encoder.encode), encoder)
    assert header["op"] == request_.OP.value
    assert m.read_request(header, decode) == request_


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_a_reply_reads_back_as_sent(reply: m.Reply) -> None:
    encoder = codec.Encoder()
    header, decode = _through_the_codec(reply.to_wire(encoder.encode), encoder)
    assert m.read_reply(header, decode) == reply


def test_every_op_has_one_request_and_every_request_names_its_reply() -> None:
    assert set(m.REQUESTS) == {op.value for op in m.Op}
    assert all(issubclass(cls.REPLY, m.Reply) for cls in m.REQUESTS.values())


@pytest.mark.parametrize(
    "header",
    [
        {"ok": True, "reply": "kept", "ident": "3"},  # a string for an integer
        {"ok": True, "reply": "kept", "ident": True},  # a bool is no integer here
        {"ok": True, "reply": "kept"},  # a field missing
        {"ok": True, "reply": "loaded", "names": ["f", 3]},
        {"ok": True, "reply": "loaded", "names": "f"},
        {"ok": True, "reply": "runtime", "torch": None, "device": "cpu", "seconds": "1"},
        {"ok": True, "reply": "nonsense"},
        {"ok": True, "reply": ["value"]},
        {"ok": True, "value": 1},  # no kind at all
        {"ok": "yes", "reply": "done"},
        {"ok": False, "error": "a string"},
    ],
)
def test_a_reply_that_is_not_what_it_claims_is_refused(header: dict[str, Any]) -> None:
    with pytest.raises(m.ProtocolError):
        m.read_reply(header, lambda tree: tree)


@pytest.mark.parametrize(
    "header",
    [{"op": "exec"}, {"op": 3}, {}, {"op": "take", "obj": 1, "count": "all"}, {"op": "load", "module": "m"}],
)
def test_a_request_that_is_not_what_it_claims_is_refused(header: dict[str, Any]) -> None:
    with pytest.raises(m.ProtocolError):
        m.read_request(header, lambda tree: tree)


def test_a_failure_carries_a_reduced_error_report() -> None:
    failed = m.read_reply(
        {"ok": False, "fatal": True, "error": {"type": "X" * 500, "frames": [[1, "f"], ["2", "g"]]}},
        lambda tree: tree,
    )
    assert isinstance(failed, m.Failed) and failed.fatal
    assert failed.error.type == "X" * 100 and failed.error.frames == ((1, "f"),)
    report = m.ErrorReport("ValueError", "bad", ("ValueError", "Exception"), ((3, "f"),), stage="lookup")
    assert m.ErrorReport.from_wire(report.to_wire()) == report
