"""The wire format between the trusted harness and the sandboxed runner.

A frame is a fixed prefix, a JSON header, and raw buffers:

    MAGIC (4 bytes) | header length (u32) | buffer count (u32) | buffer lengths (u64 each)
    | header (UTF-8 JSON) | payload (each buffer starts at a 64-byte aligned offset)

Every length is checked against `Caps` before anything is allocated or parsed. Values inside the
header are JSON trees in which every JSON object is a tagged value (`{"t": "tensor", ...}`), so a
decoder never has to guess: lists are lists, and tuples, dicts, bytes, tensors, arrays, handles
and files are tagged. There is no pickle anywhere, and the decoder only ever builds plain data.

This module runs on both sides of the trust boundary and imports only the standard library at
import time; torch and numpy are imported when a tensor or an array is met.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAGIC = b"GRF1"
PREFIX = struct.Struct("<4sII")
LENGTH = struct.Struct("<Q")
ALIGN = 64
INLINE_BYTES = 4096

TORCH_DTYPES = (
    "bool", "uint8", "int8", "int16", "int32", "int64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
)  # fmt: skip
NUMPY_KINDS = frozenset("biufc")
# torch layers a test may hand to a submission (a base layer to wrap, say): sent as their
# constructor arguments and state dict, rebuilt on the other side. Constructor argument names
# are read from the layer's attributes of the same name.
TORCH_LAYERS: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features"),
    "Embedding": ("num_embeddings", "embedding_dim"),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine"),
    "Dropout": ("p",),
}


class CodecError(ValueError):
    """A frame or a value that is outside the protocol (too large, malformed, or not allowed)."""


@dataclass(frozen=True)
class Caps:
    """Size limits checked before a frame is read or a value is built."""

    max_header: int = 16 * 1024 * 1024
    max_payload: int = 512 * 1024 * 1024
    max_buffers: int = 65536
    max_depth: int = 64
    max_nodes: int = 4_000_000
    max_int_bits: int = (
        64  # bigger ints are refused: past 64 bits they can be built to collide in hash tables
    )
    max_seconds: float = 10.0  # CPU time one value may take to decode


DEFAULT_CAPS = Caps()
REPLY_HEADER_BYTES = 1024 * 1024  # the curriculum's largest reply header is about 75 KB
READ_CHUNK = 1024 * 1024


def reply_caps(max_payload: int) -> Caps:
    """Caps for what the harness reads from a runner (the untrusted side): a header small enough
    to parse in a few milliseconds whatever it holds, and a bounded decoding budget. Large data
    travels in buffers, which cost what they weigh."""
    return Caps(max_header=REPLY_HEADER_BYTES, max_payload=max_payload, max_nodes=500_000, max_seconds=2.0)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# --------------------------------------------------------------------------- frames


def frame_parts(header: dict[str, Any], buffers: list[memoryview], caps: Caps = DEFAULT_CAPS) -> list[bytes]:
    """The byte strings that make up one frame, in order (write them one after another)."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=True).encode()
    if len(head) > caps.max_header:
        raise CodecError(f"header of {len(head)} bytes exceeds the cap of {caps.max_header}")
    if len(buffers) > caps.max_buffers:
        raise CodecError(f"{len(buffers)} buffers exceed the cap of {caps.max_buffers}")
    sizes = [b.nbytes for b in buffers]
    if sum(_aligned(s) for s in sizes) > caps.max_payload:
        raise CodecError(f"payload of {sum(sizes)} bytes exceeds the cap of {caps.max_payload}")
    parts: list[Any] = [PREFIX.pack(MAGIC, len(head), len(buffers))]
    parts.extend(LENGTH.pack(s) for s in sizes)
    parts.append(head)
    for buf, size in zip(buffers, sizes, strict=True):
        parts.append(buf)
        if _aligned(size) != size:
            parts.append(bytes(_aligned(size) - size))
    return parts


def read_frame(
    read_exact: Callable[[int], bytearray], caps: Caps = DEFAULT_CAPS
) -> tuple[dict[str, Any], list[memoryview]]:
    """Read one frame with `read_exact(n)`, checking every size before reading what it announces."""
    magic, head_len, nbufs = PREFIX.unpack(bytes(read_exact(PREFIX.size)))
    if magic != MAGIC:
        raise CodecError(f"bad frame magic {magic!r}")
    if head_len > caps.max_header:
        raise CodecError(f"header of {head_len} bytes exceeds the cap of {caps.max_header}")
    if nbufs > caps.max_buffers:
        raise CodecError(f"{nbufs} buffers exceed the cap of {caps.max_buffers}")
    raw_sizes = bytes(read_exact(LENGTH.size * nbufs)) if nbufs else b""
    sizes = [LENGTH.unpack_from(raw_sizes, i * LENGTH.size)[0] for i in range(nbufs)]
    total = sum(_aligned(s) for s in sizes)
    if total > caps.max_payload:
        raise CodecError(f"payload of {total} bytes exceeds the cap of {caps.max_payload}")
    header = parse_header(bytes(read_exact(head_len)))
    payload = memoryview(_read_grown(read_exact, total))
    buffers, offset = [], 0
    for size in sizes:
        buffers.append(payload[offset : offset + size])
        offset += _aligned(size)
    return header, buffers


def _read_grown(read_exact: Callable[[int], bytearray], total: int) -> bytearray:
    """`total` bytes, read a chunk at a time: memory grows with what actually arrives, so a
    frame that announces a large payload and sends little costs little."""
    if total <= READ_CHUNK:
        return read_exact(total) if total else bytearray()
    payload = bytearray()
    while len(payload) < total:
        payload += read_exact(min(READ_CHUNK, total - len(payload)))
    return payload


def parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CodecError(f"malformed header: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise CodecError("a header must be a JSON object")
    return header


# --------------------------------------------------------------------------- values


class Encoder:
    """Turns a Python value into a JSON tree plus buffers for one frame.

    `to_handle` decides what happens to a value that is not plain data: the runner passes a
    function that registers the object and returns a handle; the harness passes a function that
    turns its own proxies and files into references, and refuses everything else.
    """

    def __init__(
        self,
        caps: Caps = DEFAULT_CAPS,
        to_handle: Callable[[Any], dict[str, Any]] | None = None,
    ) -> None:
        self.caps = caps
        self.to_handle = to_handle
        self.buffers: list[memoryview] = []
        self._nodes = 0

    def encode(self, value: Any) -> Any:
        """The tree of `value`; CodecError for anything that cannot be sent, whatever fails inside
        (a value's own methods may raise anything)."""
        try:
            return self._encode(value, 0)
        except CodecError:
            raise
        except Exception as exc:  # noqa: BLE001 - the value may be a submission's
            raise CodecError(f"a value could not be encoded ({type(exc).__name__})") from exc

    def frame(self, header: dict[str, Any]) -> list[bytes]:
        return frame_parts(header, self.buffers, self.caps)

    def add_buffer(self, data: Any) -> int:
        view = memoryview(data)
        self.buffers.append(view if view.format == "B" and view.ndim == 1 else view.cast("B"))
        return len(self.buffers) - 1

    def _encode(self, value: Any, depth: int) -> Any:
        self._nodes += 1
        if self._nodes > self.caps.max_nodes:
            raise CodecError(f"value has more than {self.caps.max_nodes} parts")
        if depth > self.caps.max_depth:
            raise CodecError(f"value is nested deeper than {self.caps.max_depth} levels")
        if value is None:
            return None
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            if len(data) <= INLINE_BYTES:
                return {"t": "bytes", "v": base64.b64encode(data).decode("ascii")}
            return {"t": "bytes", "b": self.add_buffer(data)}
        if isinstance(value, list):
            return [self._encode(v, depth + 1) for v in value]
        if isinstance(value, tuple):
            return {"t": "tuple", "v": [self._encode(v, depth + 1) for v in value]}
        if isinstance(value, dict):
            items = [[self._encode(k, depth + 1), self._encode(v, depth + 1)] for k, v in value.items()]
            return {"t": "dict", "v": items}
        if isinstance(value, set | frozenset):
            return {"t": "set", "v": [self._encode(v, depth + 1) for v in value]}
        tree = self._encode_library(value)
        if tree is not None:
            return tree
        if self.to_handle is not None:
            return self.to_handle(value)
        raise CodecError(f"cannot send a value of type {type(value).__qualname__}")

    def _encode_library(self, value: Any) -> dict[str, Any] | int | float | bool | None:
        torch = sys.modules.get("torch")
        if torch is not None:
            if isinstance(value, torch.Tensor):
                return self._encode_tensor(value, torch)
            if type(value).__name__ in TORCH_LAYERS and type(value) is getattr(
                torch.nn, type(value).__name__, None
            ):
                return self._encode_layer(value)
            if isinstance(value, torch.dtype):
                return {"t": "dtype", "v": str(value).removeprefix("torch.")}
            if isinstance(value, torch.device):
                return {"t": "device", "v": str(value)}
        np = sys.modules.get("numpy")
        if np is not None:
            if isinstance(value, np.ndarray):
                return self._encode_ndarray(value)
            if isinstance(value, np.generic) and value.dtype.kind in "biuf":
                item = value.item()
                return item if isinstance(item, bool | int | float) else None
        return None

    def _encode_tensor(self, value: Any, torch: Any) -> dict[str, Any]:
        with torch._C.DisableTorchFunctionSubclass():
            if value.layout != torch.strided or value.is_quantized or value.device.type == "meta":
                raise CodecError(f"cannot send a {value.layout} tensor on {value.device.type}")
            dtype = str(value.dtype).removeprefix("torch.")
            if dtype not in TORCH_DTYPES:
                raise CodecError(f"cannot send a tensor of dtype {dtype}")
            requires_grad = bool(value.requires_grad)
            plain = value.detach().to("cpu").contiguous()
            if plain.is_conj():
                plain = plain.resolve_conj()
            shape = [int(s) for s in plain.shape]
            flat = plain.reshape(-1)
            if flat.numel() and flat.stride(0) != 1:
                # a one-element view (`x[:, -1]` of a row) counts as contiguous with any stride
                flat = flat.clone(memory_format=torch.contiguous_format)
            raw = flat.view(torch.uint8).numpy() if flat.numel() else b""
        return {"t": "tensor", "dtype": dtype, "shape": shape, "b": self.add_buffer(raw), "rg": requires_grad}

    def _encode_layer(self, layer: Any) -> dict[str, Any]:
        name = type(layer).__name__
        config = {key: getattr(layer, key) for key in TORCH_LAYERS[name]}
        if name == "Linear":
            config["bias"] = layer.bias is not None
        state = {key: value for key, value in layer.state_dict().items()}
        frozen = [key for key, param in layer.named_parameters() if not param.requires_grad]
        return {
            "t": "layer",
            "cls": name,
            "config": self.encode(config),
            "state": self.encode(state),
            "frozen": frozen,
            "training": bool(layer.training),
        }

    def _encode_ndarray(self, value: Any) -> dict[str, Any]:
        if value.dtype.kind not in NUMPY_KINDS or value.dtype.hasobject:
            raise CodecError(f"cannot send an array of dtype {value.dtype}")
        import numpy as np

        plain = np.ascontiguousarray(value)
        return {
            "t": "ndarray",
            "dtype": plain.dtype.str,
            "shape": [int(s) for s in plain.shape],
            "b": self.add_buffer(plain.reshape(-1).view(np.uint8)),
        }


class Decoder:
    """Builds plain Python values from a JSON tree and the frame's buffers.

    Each extension point is off unless a callback is given: `on_handle` (the harness receiving a
    remote object), `on_ref` (the runner resolving an object it handed out), `on_file` (the runner
    materialising a file the harness sent).
    """

    def __init__(
        self,
        buffers: list[memoryview],
        caps: Caps = DEFAULT_CAPS,
        *,
        on_handle: Callable[[dict[str, Any]], Any] | None = None,
        on_ref: Callable[[int], Any] | None = None,
        on_file: Callable[[str, memoryview, bool], Any] | None = None,
        grad_inputs: bool = False,
        layers: bool = False,
        deadline: float | None = None,
    ) -> None:
        self.buffers = buffers
        self.deadline = deadline  # time.monotonic() past which decoding stops
        self.caps = caps
        self.on_handle = on_handle
        self.on_ref = on_ref
        self.on_file = on_file
        self.grad_inputs = grad_inputs
        self.layers = layers
        self._nodes = 0
        self._used: set[int] = set()
        self._started = 0.0

    def decode(self, tree: Any) -> Any:
        """The value of `tree`; CodecError for anything malformed, whatever fails inside."""
        self._started = time.process_time()
        try:
            return self._decode(tree, 0)
        except CodecError:
            raise
        except (
            TypeError,
            ValueError,
            OverflowError,
            RuntimeError,
            SyntaxError,
            MemoryError,
            RecursionError,
        ) as exc:
            raise CodecError(f"malformed value ({type(exc).__name__})") from None

    def _buffer(self, index: Any) -> memoryview:
        if type(index) is not int or not 0 <= index < len(self.buffers):
            raise CodecError(f"bad buffer reference {index!r}")
        if index in self._used:  # one buffer, one value: no amplification, no aliasing
            raise CodecError(f"buffer {index} is referenced twice")
        self._used.add(index)
        return self.buffers[index]

    def _decode(self, tree: Any, depth: int) -> Any:
        self._nodes += 1
        if self._nodes > self.caps.max_nodes:
            raise CodecError(f"value has more than {self.caps.max_nodes} parts")
        if depth > self.caps.max_depth:
            raise CodecError(f"value is nested deeper than {self.caps.max_depth} levels")
        if self._nodes % 4096 == 0:
            self._check_clock()
        if type(tree) is int:
            if tree.bit_length() > self.caps.max_int_bits:
                raise CodecError(f"an integer of more than {self.caps.max_int_bits} bits")
            return tree
        if tree is None or isinstance(tree, bool | float | str):
            return tree
        if isinstance(tree, list):
            return [self._decode(v, depth + 1) for v in tree]
        if not isinstance(tree, dict):
            raise CodecError(f"unexpected JSON value of type {type(tree).__name__}")
        tag = tree.get("t")
        decode = _DECODERS.get(tag) if isinstance(tag, str) else None
        if decode is None:
            raise CodecError(f"unknown value tag {tag!r}")
        return decode(self, tree, depth)

    def _items(self, tree: dict[str, Any], depth: int) -> list[Any]:
        items = tree.get("v")
        if not isinstance(items, list):
            raise CodecError(f"{tree.get('t')} without a list of items")
        return [self._decode(v, depth + 1) for v in items]

    def _tuple(self, tree: dict[str, Any], depth: int) -> tuple[Any, ...]:
        return tuple(self._items(tree, depth))

    def _set(self, tree: dict[str, Any], depth: int) -> set[Any]:
        out: set[Any] = set()
        for i, item in enumerate(self._items(tree, depth)):
            try:
                out.add(item)
            except TypeError:
                raise CodecError("a set holds an unhashable value") from None
            self._budget(i)
        return out

    def _dict(self, tree: dict[str, Any], depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for i, pair in enumerate(self._items(tree, depth)):
            if not isinstance(pair, list) or len(pair) != 2:
                raise CodecError("a dict item must be a [key, value] pair")
            try:
                out[pair[0]] = pair[1]
            except TypeError:
                raise CodecError(f"a dict key of type {type(pair[0]).__name__} is not hashable") from None
            self._budget(i)
        return out

    def _budget(self, i: int) -> None:
        # hash tables go quadratic on colliding keys: watch the clock while they grow
        if i % 256 == 255:
            self._check_clock()

    def _check_clock(self) -> None:
        if time.process_time() - self._started > self.caps.max_seconds:
            raise CodecError(f"value takes more than {self.caps.max_seconds:g} s to decode")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise CodecError("value is still being decoded when the call's time is up")

    def _bytes(self, tree: dict[str, Any], depth: int) -> bytes:
        if "b" in tree:
            return bytes(self._buffer(tree["b"]))
        text = tree.get("v")
        if not isinstance(text, str):
            raise CodecError("bytes without data")
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise CodecError("bytes with bad base64 data") from None

    def _tensor(self, tree: dict[str, Any], depth: int) -> Any:
        import torch

        dtype_name, shape = tree.get("dtype"), _shape(tree.get("shape"))
        if dtype_name not in TORCH_DTYPES:
            raise CodecError(f"tensor dtype {dtype_name!r} is not allowed")
        dtype = getattr(torch, dtype_name)
        buf = self._buffer(tree.get("b"))
        itemsize = torch.empty((), dtype=dtype).element_size()
        if math.prod(shape) * itemsize != buf.nbytes:
            raise CodecError(f"tensor of shape {shape} and dtype {dtype_name} does not match its buffer")
        if buf.nbytes == 0:
            out = torch.empty(shape, dtype=dtype)
        else:
            out = torch.frombuffer(_writable(buf), dtype=torch.uint8).view(dtype).reshape(shape)
        if self.grad_inputs and tree.get("rg") is True and (out.is_floating_point() or out.is_complex()):
            out.requires_grad_(True)
        return out

    def _ndarray(self, tree: dict[str, Any], depth: int) -> Any:
        import numpy as np

        try:
            dtype = np.dtype(str(tree.get("dtype")))
        except TypeError:
            raise CodecError(f"array dtype {tree.get('dtype')!r} is not allowed") from None
        if dtype.kind not in NUMPY_KINDS or dtype.hasobject:
            raise CodecError(f"array dtype {dtype} is not allowed")
        shape, buf = _shape(tree.get("shape")), self._buffer(tree.get("b"))
        if math.prod(shape) * dtype.itemsize != buf.nbytes:
            raise CodecError(f"array of shape {shape} and dtype {dtype} does not match its buffer")
        return np.frombuffer(_writable(buf), dtype=dtype).reshape(shape)

    def _dtype(self, tree: dict[str, Any], depth: int) -> Any:
        import torch

        if tree.get("v") not in TORCH_DTYPES:
            raise CodecError(f"dtype {tree.get('v')!r} is not allowed")
        return getattr(torch, tree["v"])

    def _device(self, tree: dict[str, Any], depth: int) -> Any:
        import torch

        name = tree.get("v")
        if not isinstance(name, str) or len(name) > 32:
            raise CodecError("bad device")
        try:
            return torch.device(name)
        except RuntimeError:
            raise CodecError(f"bad device {name!r}") from None

    def _handle(self, tree: dict[str, Any], depth: int) -> Any:
        if self.on_handle is None:
            raise CodecError("handles are not accepted here")
        if type(tree.get("id")) is not int:
            raise CodecError("a handle needs an integer id")
        return self.on_handle(tree)

    def _ref(self, tree: dict[str, Any], depth: int) -> Any:
        if self.on_ref is None or type(tree.get("id")) is not int:
            raise CodecError("references are not accepted here")
        return self.on_ref(tree["id"])

    def _layer(self, tree: dict[str, Any], depth: int) -> Any:
        import torch

        name = tree.get("cls")
        if not self.layers or name not in TORCH_LAYERS:
            raise CodecError(f"layers of type {name!r} are not accepted here")
        config, state = (
            self._decode(tree.get("config"), depth + 1),
            self._decode(tree.get("state"), depth + 1),
        )
        if (
            not isinstance(config, dict)
            or not isinstance(state, dict)
            or set(config) - {*TORCH_LAYERS[name], "bias"}
        ):
            raise CodecError(f"a {name} layer with a bad configuration")
        positional = [config.pop(key) for key in TORCH_LAYERS[name][:2] if key in config]
        try:
            layer = getattr(torch.nn, name)(*positional, **config)
            tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
            dtypes = {v.dtype for v in tensors.values() if v.is_floating_point()}
            if len(dtypes) == 1:
                layer = layer.to(dtypes.pop())
            layer.load_state_dict(tensors)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CodecError(f"cannot rebuild a {name} layer: {exc}") from None
        frozen = tree.get("frozen", [])
        for key, param in layer.named_parameters():
            param.requires_grad_(key not in frozen)
        layer.train(tree.get("training") is True)
        return layer

    def _file(self, tree: dict[str, Any], depth: int) -> Any:
        name = tree.get("name")
        if self.on_file is None or not isinstance(name, str):
            raise CodecError("files are not accepted here")
        return self.on_file(name, self._buffer(tree.get("b")), tree.get("open") is True)


def _shape(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or len(raw) > 32 or any(type(s) is not int or s < 0 for s in raw):
        raise CodecError(f"bad shape {raw!r}")
    return tuple(raw)


def _writable(buf: memoryview) -> Any:
    return buf if not buf.readonly else bytearray(buf)


_DECODERS: dict[str, Callable[[Decoder, dict[str, Any], int], Any]] = {
    "tuple": Decoder._tuple,
    "set": Decoder._set,
    "dict": Decoder._dict,
    "bytes": Decoder._bytes,
    "tensor": Decoder._tensor,
    "ndarray": Decoder._ndarray,
    "dtype": Decoder._dtype,
    "device": Decoder._device,
    "handle": Decoder._handle,
    "ref": Decoder._ref,
    "file": Decoder._file,
    "layer": Decoder._layer,
}
