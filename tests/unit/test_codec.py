"""The wire format: round trips, and refusal of anything outside the protocol."""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import codec
from grader.codec import Caps, CodecError, Decoder, Encoder


def roundtrip(value: Any, caps: Caps = codec.DEFAULT_CAPS, **decoder: Any) -> Any:
    encoder = Encoder(caps)
    parts = encoder.frame({"v": encoder.encode(value)})
    stream = io.BytesIO(b"".join(bytes(p) for p in parts))
    header, buffers = codec.read_frame(lambda n: bytearray(_exact(stream, n)), caps)
    return Decoder(buffers, caps, **decoder).decode(header["v"])


def _exact(stream: io.BytesIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def frame_reader(data: bytes) -> Any:
    stream = io.BytesIO(data)
    return lambda n: bytearray(_exact(stream, n))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**62,
        1.5,
        -0.0,
        float("inf"),
        "",
        "héllo ☃ 𝄞",
        b"",
        b"\x00\xff" * 10,
        b"x" * 10_000,
        [],
        [1, [2, [3]]],
        (),
        (1, "a"),
        {"a": 1},
        {1: b"a", 2: b"bc"},
        {(1, 2): "t"},
        {1, 2, 3},
        [None, (True, {"k": [1.0]})],
    ],
    ids=repr,
)
def test_plain_values_round_trip_exactly(value: Any) -> None:
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value) or isinstance(value, frozenset)


def test_nan_round_trips_as_nan() -> None:
    assert math.isnan(roundtrip(float("nan")))


@pytest.mark.parametrize("dtype", [getattr(torch, d) for d in codec.TORCH_DTYPES], ids=str)
def test_tensors_keep_dtype_shape_and_bits(dtype: torch.dtype) -> None:
    x = (torch.arange(24) % 5).reshape(2, 3, 4).to(dtype)
    out = roundtrip(x)
    assert type(out) is torch.Tensor and out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, x)


@pytest.mark.parametrize(
    "x",
    [
        torch.empty(0, 3),
        torch.tensor(3.5),
        torch.randn(4, 6).t(),
        torch.randn(3, 3)[:, 1],
        torch.randn(1, 5)[:, -1],
        torch.randn(1, 5)[:, -1].clone(),
        torch.randn(2, 1, 5)[:, :, -1:],
        torch.randn(2, 2) + 1j,
    ],
    ids=["empty", "scalar", "transposed", "strided", "row-end", "row-end-copy", "unit-dims", "complex"],
)
def test_unusual_tensors(x: torch.Tensor) -> None:
    out = roundtrip(x)
    assert out.shape == x.shape and torch.equal(out, x)


def test_requires_grad_travels_only_when_asked() -> None:
    x = torch.randn(3, requires_grad=True)
    assert roundtrip(x).requires_grad is False
    assert roundtrip(x, grad_inputs=True).requires_grad is True


def test_ndarrays_and_numpy_scalars() -> None:
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    out = roundtrip(a)
    assert out.dtype == a.dtype and np.array_equal(out, a)
    assert roundtrip(np.float32(2.5)) == 2.5
    assert roundtrip(np.int64(7)) == 7


def test_dtype_and_device_values() -> None:
    assert roundtrip([torch.float16, torch.device("cpu")]) == [torch.float16, torch.device("cpu")]


class Sneaky(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return torch.ones(1)  # lies about everything


def test_tensor_subclass_arrives_as_plain_data() -> None:
    x = torch.arange(4.0).as_subclass(Sneaky)
    out = roundtrip(x)
    assert type(out) is torch.Tensor
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_subclasses_of_builtins_arrive_as_builtins() -> None:
    class AlwaysEqual(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    out = roundtrip(AlwaysEqual(3))
    assert type(out) is int and out != 4


def test_a_value_whose_own_methods_raise_is_a_codec_error() -> None:
    class Treacherous(int):
        def __int__(self) -> int:
            raise ZeroDivisionError("from the value itself")

    class Odd(torch.Tensor):
        @property
        def layout(self) -> Any:  # type: ignore[override]
            raise KeyError("from the tensor itself")

    for value in (Treacherous(3), torch.arange(3.0).as_subclass(Odd)):
        with pytest.raises(CodecError, match="could not be encoded"):
            Encoder().encode([value])


def test_unknown_objects_are_refused_without_a_handle_policy() -> None:
    with pytest.raises(CodecError, match="cannot send"):
        Encoder().encode(object())


def test_unknown_objects_become_handles_when_allowed() -> None:
    seen: list[Any] = []

    def to_handle(obj: Any) -> dict[str, Any]:
        seen.append(obj)
        return {"t": "handle", "id": len(seen), "type": "x"}

    encoder = Encoder(to_handle=to_handle)
    tree = encoder.encode([object(), 1])
    assert tree[0] == {"t": "handle", "id": 1, "type": "x"}
    assert Decoder([], on_handle=lambda t: ("proxy", t["id"])).decode(tree) == [("proxy", 1), 1]


@pytest.mark.parametrize("tag", ["handle", "ref", "file"])
def test_extension_tags_are_refused_unless_enabled(tag: str) -> None:
    with pytest.raises(CodecError):
        Decoder([]).decode({"t": tag, "id": 1, "name": "x", "b": 0})


def test_deep_nesting_is_refused_both_ways() -> None:
    deep: list[Any] = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(CodecError, match="nested"):
        Encoder(Caps(max_depth=64)).encode(deep)
    tree: Any = []
    for _ in range(100):
        tree = [tree]
    with pytest.raises(CodecError, match="nested"):
        Decoder([], Caps(max_depth=64)).decode(tree)


def test_self_referencing_values_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CodecError):
        Encoder().encode(loop)


def test_node_count_cap() -> None:
    with pytest.raises(CodecError, match="parts"):
        Decoder([], Caps(max_nodes=100)).decode(list(range(1000)))


@pytest.mark.parametrize(
    "tree",
    [
        {"t": "tensor", "dtype": "float32", "shape": [3], "b": 0},  # 4 bytes for 12
        {"t": "tensor", "dtype": "object", "shape": [1], "b": 0},
        {"t": "tensor", "dtype": "float32", "shape": [-1], "b": 0},
        {"t": "tensor", "dtype": "float32", "shape": "3", "b": 0},
        {"t": "ndarray", "dtype": "O", "shape": [1], "b": 0},
        {"t": "ndarray", "dtype": "<f8", "shape": [1], "b": 0},
        {"t": "bytes", "b": 7},
        {"t": "bytes", "v": "not base64!"},
        {"t": "dict", "v": [[[1], 2]]},
        {"t": "dict", "v": [[1]]},
        {"t": "set", "v": [[1]]},
        {"t": "pickle", "v": "gASVAAAAAAAAAAA="},
        {"no": "tag"},
    ],
    ids=lambda t: json.dumps(t)[:40],
)
def test_malformed_values_are_refused(tree: dict[str, Any]) -> None:
    with pytest.raises(CodecError):
        Decoder([memoryview(bytearray(4))]).decode(tree)


def prefix(magic: bytes = codec.MAGIC, head: int = 2, nbufs: int = 0) -> bytes:
    return struct.pack("<4sII", magic, head, nbufs)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (prefix(magic=b"PKL!") + b"{}", "magic"),
        (prefix(head=100 * 1024 * 1024), "header"),
        (prefix(nbufs=10**6), "buffers"),
        (prefix(nbufs=1) + struct.pack("<Q", 2**40) + b"{}", "payload"),
        (prefix(head=2) + b"[]", "object"),
        (prefix(head=4) + b"\xff\xfe{}", "malformed"),
        (prefix(head=6) + b"[[[[[[", "malformed"),
    ],
    ids=["magic", "header-cap", "buffer-count", "payload-cap", "not-object", "not-utf8", "bad-json"],
)
def test_bad_frames_are_refused_before_reading_what_they_announce(data: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        codec.read_frame(frame_reader(data), Caps(max_header=1024 * 1024, max_payload=1024 * 1024))


def test_deeply_nested_json_header_is_refused() -> None:
    header = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(CodecError):
        codec.read_frame(frame_reader(prefix(head=len(header)) + header))


def test_truncated_frame_is_eof() -> None:
    encoder = Encoder()
    data = b"".join(bytes(p) for p in encoder.frame({"v": encoder.encode(b"y" * 9000)}))
    with pytest.raises(EOFError):
        codec.read_frame(frame_reader(data[:-10]))


def test_no_pickle_anywhere_in_the_codec() -> None:
    source = Path(codec.__file__).read_text(encoding="utf-8")
    assert "import pickle" not in source and "pickle.load" not in source


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_anything_but_codec_errors(data: bytes) -> None:
    try:
        header, buffers = codec.read_frame(frame_reader(data))
        Decoder(buffers).decode(header)
    except (CodecError, EOFError):
        pass


json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["t", "v", "b", "id", "dtype", "shape"]), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_trees)
def test_random_trees_never_escape_as_anything_but_codec_errors(tree: Any) -> None:
    try:
        Decoder([memoryview(bytearray(8))]).decode(tree)
    except CodecError:
        pass


@pytest.mark.parametrize(
    "layer",
    [
        torch.nn.Linear(4, 3),
        torch.nn.Linear(5, 2, bias=False).to(torch.float64),
        torch.nn.Embedding(7, 3),
        torch.nn.LayerNorm(6, eps=1e-3),
        torch.nn.Dropout(0.25),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_allowed_torch_layers_are_rebuilt_with_their_state(layer: torch.nn.Module) -> None:
    layer.eval()
    for param in list(layer.parameters())[:1]:
        param.requires_grad_(False)
    out = roundtrip(layer, layers=True)
    assert type(out) is type(layer) and out.training is False
    assert out.state_dict().keys() == layer.state_dict().keys()
    for key, value in layer.state_dict().items():
        assert torch.equal(out.state_dict()[key], value) and out.state_dict()[key].dtype == value.dtype
    assert [p.requires_grad for p in out.parameters()] == [p.requires_grad for p in layer.parameters()]


def test_layers_are_refused_where_not_enabled_and_other_modules_are_not_data() -> None:
    with pytest.raises(CodecError, match="not accepted here"):
        roundtrip(torch.nn.Linear(2, 2))
    with pytest.raises(CodecError, match="cannot send"):
        Encoder().encode(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_a_forged_layer_is_refused() -> None:
    config = {"t": "dict", "v": [["in_features", 2], ["__class__", 1]]}
    tree = {"t": "layer", "cls": "Linear", "config": config, "state": {"t": "dict", "v": []}}
    with pytest.raises(CodecError, match="bad configuration"):
        Decoder([], layers=True).decode(tree)


def test_a_buffer_can_back_only_one_value() -> None:
    buffers = [memoryview(bytearray(b"x" * 64))]
    with pytest.raises(CodecError, match="referenced twice"):
        Decoder(buffers).decode([{"t": "bytes", "b": 0}, {"t": "bytes", "b": 0}])


def test_ints_past_64_bits_are_refused() -> None:
    assert Decoder([]).decode(2**64 - 1) == 2**64 - 1 and Decoder([]).decode(-(2**63)) == -(2**63)
    with pytest.raises(CodecError, match="more than 64 bits"):
        Decoder([]).decode(2**64)


@pytest.mark.parametrize(
    "tree",
    [
        {"t": "set", "v": list(range(1000))},
        {"t": "dict", "v": [[i, i] for i in range(1000)]},
        list(range(10_000)),
    ],
    ids=["set", "dict", "list"],
)
def test_decoding_has_a_cpu_budget(tree: Any) -> None:
    # keys built to collide make hash tables quadratic: the budget is checked while they grow
    with pytest.raises(CodecError, match="to decode"):
        Decoder([], Caps(max_seconds=0.0)).decode(tree)


@pytest.mark.parametrize(
    "tree",
    [
        {"t": "tensor", "dtype": "float32", "shape": [0, 2**62, 2**62], "b": 0},
        {"t": "tensor", "dtype": "float32", "shape": [0, 2**63], "b": 0},
        {"t": "ndarray", "dtype": "i4,(", "shape": [1], "b": 0},
        {"t": "ndarray", "dtype": "f8(99999999999999999,)", "shape": [1], "b": 0},
    ],
    ids=["tensor-overflow", "tensor-huge-dim", "dtype-syntax", "dtype-huge"],
)
def test_any_failure_inside_the_decoder_is_a_codec_error(tree: dict[str, Any]) -> None:
    with pytest.raises(CodecError):
        Decoder([memoryview(bytearray(0))]).decode(tree)
