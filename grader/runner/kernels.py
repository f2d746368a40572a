"""Triton kernels in the interpreter: bounds checks, and what each launch reads and writes.

On a host without a GPU the sandbox sets TRITON_INTERPRET=1, and Triton runs every program of a
launch in Python on CPU tensors. `install` wraps the interpreter so that:

- every load, store and atomic is checked against the launch's tensor arguments (each one's
  extent, from its first to its last element): an access outside all of them raises
  `OutOfBounds` before it touches memory, where a GPU would read garbage or fault;
- each launch is counted, with the bytes it loads and stores, the FLOPs of its `tl.dot`s, and a
  model of its DRAM traffic behind an L2 cache (`dram_bytes`, below);
- each launch's kernel, argument types and constexpr values are kept, so that the kernels can be
  compiled for a real GPU afterwards (`grader.runner.build`).

The figures describe the kernels' design, whatever the hardware: a fused softmax reads its input
once, an unfused one three times. They are runner-reported: they catch honest design mistakes,
not a submission that tampers with its own interpreter.

The DRAM model: programs are taken in the order a GPU schedules them (axis 0 fastest), in waves of
`WAVE` consecutive programs that run together; within a wave, each 128-byte line that is loaded
counts once (the programs of one wave share it through L2); stores count in full. A launch order
that lets neighbouring programs reuse the same tiles (a grouped matmul) moves fewer bytes.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any

WAVE = 16  # programs resident together in the DRAM model
LINE = 128  # bytes per cache line in the DRAM model
MAX_RECORDED_LAUNCHES = 64  # distinct (kernel, signature) pairs kept for a compile check


class OutOfBounds(RuntimeError):
    """A kernel accessed memory outside every tensor it was given."""


@dataclasses.dataclass
class Launch:
    """What one kernel launch was given, enough to compile the same kernel for a GPU."""

    kernel: str  # the kernel function's name
    module: str  # the module that defines it
    signature: dict[str, str]  # argument -> Triton type ("*fp32", "i32", "constexpr")
    constexprs: dict[str, Any]
    options: dict[str, int]  # num_warps, num_stages as passed at launch

    def key(self) -> tuple[Any, ...]:
        return (
            self.module,
            self.kernel,
            tuple(sorted(self.signature.items())),
            tuple(sorted((k, repr(v)) for k, v in self.constexprs.items())),
            tuple(sorted(self.options.items())),
        )


@dataclasses.dataclass
class Counters:
    launches: int = 0
    programs: int = 0
    loaded_bytes: int = 0
    stored_bytes: int = 0
    dram_bytes: int = 0
    dot_flops: int = 0
    kernels: dict[str, int] = dataclasses.field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        return {
            "launches": self.launches,
            "programs": self.programs,
            "loaded_bytes": self.loaded_bytes,
            "stored_bytes": self.stored_bytes,
            "traffic_bytes": self.loaded_bytes + self.stored_bytes,
            "dram_bytes": self.dram_bytes,
            "dot_flops": self.dot_flops,
            "kernels": dict(self.kernels),
        }


class _State(threading.local):
    def __init__(self) -> None:
        self.ranges: Any = None  # sorted (start, end, base) of the current launch's tensors: their
        # bytes, and where their allocation begins (cache lines are counted from there, as on a GPU,
        # whose allocations are aligned, so that the figure does not depend on the host's malloc)
        self.kernel = ""
        self.program = (0, 0, 0)
        self.lines: list[Any] = []  # cache lines loaded by the current program
        self.program_lines: dict[int, Any] = {}  # linear program id -> its unique lines


_state = _State()
counters = Counters()
launches: dict[tuple[Any, ...], Launch] = {}
installed = False


def interpreting() -> bool:
    """Whether Triton was imported and runs kernels in its interpreter."""
    import sys

    triton = sys.modules.get("triton")
    if triton is None:
        return False
    try:
        return bool(triton.knobs.runtime.interpret)
    except AttributeError:  # an older Triton without knobs
        import os

        return os.environ.get("TRITON_INTERPRET") == "1"


def reset() -> None:
    global counters
    counters = Counters()


def install() -> bool:
    """Wrap Triton's interpreter (once). False when Triton is not interpreting kernels."""
    global installed
    if installed:
        return True
    if not interpreting():
        return False
    from triton.runtime import interpreter

    builder = interpreter.interpreter_builder
    _wrap_memory(builder)
    _wrap_launch(interpreter.GridExecutor)
    installed = True
    return True


# ---------------------------------------------------------------- memory accesses


def _extent(tensor: Any) -> tuple[int, int, int]:
    """The bytes a tensor's elements span, [first, last + 1), and its allocation's start."""
    if tensor.numel() == 0:
        return (0, 0, 0)
    size = tensor.element_size()
    low = high = 0
    for extent, stride in zip(tensor.shape, tensor.stride(), strict=True):
        if stride >= 0:
            high += (extent - 1) * stride
        else:
            low += (extent - 1) * stride
    start = tensor.data_ptr()
    try:
        base = int(tensor.untyped_storage().data_ptr())
    except (AttributeError, RuntimeError):
        base = start
    return (start + low * size, start + (high + 1) * size, base)


def _check(ptrs: Any, mask: Any, size: int, what: str) -> Any:
    """The addresses of the active lanes and the start of the allocation each lies in; raises
    OutOfBounds if any lies outside every tensor."""
    import numpy as np

    addresses = np.atleast_1d(np.asarray(ptrs)).astype(np.uint64, copy=False)
    active = np.broadcast_to(np.atleast_1d(np.asarray(mask, dtype=bool)), addresses.shape)
    used = addresses[active]
    bases = np.zeros(used.shape, dtype=np.uint64)
    if used.size == 0:
        return used, bases
    inside = np.zeros(used.shape, dtype=bool)
    for start, end, base in _state.ranges or ():
        here = (used >= np.uint64(start)) & (used + np.uint64(size) <= np.uint64(end))
        bases[here & ~inside] = np.uint64(base)
        inside |= here
    if not inside.all():
        raise OutOfBounds(
            f"kernel {_state.kernel} {what} memory outside every tensor it was given: "
            "mask the accesses past the end of each tensor"
        )
    return used, bases


def _element_size(ptrs: Any) -> int:
    element = ptrs.get_element_ty()
    return max(1, int(element.primitive_bitwidth) // 8)


def _wrap_memory(builder: Any) -> None:
    masked_load = builder.create_masked_load
    masked_store = builder.create_masked_store
    atomic_rmw = builder.create_atomic_rmw
    atomic_cas = builder.create_atomic_cas
    dot = builder.create_dot

    def create_masked_load(ptrs: Any, mask: Any, other: Any, *args: Any) -> Any:
        import numpy as np

        size = _element_size(ptrs)
        used, bases = _check(ptrs.data, mask.data, size, "loaded")
        counters.loaded_bytes += int(used.size) * size
        if used.size:  # a line: its first byte, counted from the allocation's start
            line = np.uint64(LINE)
            _state.lines.append(used - (used - bases) % line)
            if size > 1:  # an element that straddles two lines loads both
                last = used + np.uint64(size - 1)
                _state.lines.append(last - (last - bases) % line)
        return masked_load(ptrs, mask, other, *args)

    def create_masked_store(ptrs: Any, value: Any, mask: Any, *args: Any) -> Any:
        size = _element_size(ptrs)
        used, _ = _check(ptrs.data, mask.data, size, "stored")
        counters.stored_bytes += int(used.size) * size
        counters.dram_bytes += int(used.size) * size
        return masked_store(ptrs, value, mask, *args)

    def create_atomic_rmw(op: Any, ptr: Any, val: Any, mask: Any, *args: Any) -> Any:
        size = _element_size(ptr)
        used, _ = _check(ptr.data, mask.data, size, "updated")
        counters.loaded_bytes += int(used.size) * size
        counters.stored_bytes += int(used.size) * size
        counters.dram_bytes += 2 * int(used.size) * size
        return atomic_rmw(op, ptr, val, mask, *args)

    def create_atomic_cas(ptr: Any, cmp: Any, val: Any, *args: Any) -> Any:
        import numpy as np

        size = _element_size(ptr)
        used, _ = _check(ptr.data, np.ones(np.shape(ptr.data), dtype=bool), size, "updated")
        counters.loaded_bytes += int(used.size) * size
        counters.stored_bytes += int(used.size) * size
        counters.dram_bytes += 2 * int(used.size) * size
        return atomic_cas(ptr, cmp, val, *args)

    def create_dot(a: Any, b: Any, d: Any, *args: Any) -> Any:
        shape_a, shape_b = a.data.shape, b.data.shape
        if len(shape_a) >= 2 and len(shape_b) >= 2:
            batch = math.prod(shape_a[:-2]) if len(shape_a) > 2 else 1
            counters.dot_flops += 2 * batch * shape_a[-2] * shape_a[-1] * shape_b[-1]
        return dot(a, b, d, *args)

    builder.create_masked_load = create_masked_load
    builder.create_masked_store = create_masked_store
    builder.create_atomic_rmw = create_atomic_rmw
    builder.create_atomic_cas = create_atomic_cas
    builder.create_dot = create_dot


# ---------------------------------------------------------------- launches


def _wrap_launch(executor: Any) -> None:
    call = executor.__call__
    init_args = executor._init_args_hst
    set_grid_idx = type(_builder()).set_grid_idx

    def init_args_hst(self: Any, args_dev: Any, kwargs: Any) -> Any:
        args_hst, kwargs_hst = init_args(self, args_dev, kwargs)
        ranges = [_extent(t) for t in _tensors(list(args_hst) + list(kwargs_hst.values()))]
        _state.ranges = sorted(r for r in ranges if r[1] > r[0])
        return args_hst, kwargs_hst

    def launch(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(self.fn, "__name__", "kernel")
        options = {k: int(kwargs[k]) for k in ("num_warps", "num_stages") if isinstance(kwargs.get(k), int)}
        _state.kernel, _state.ranges, _state.program_lines, _state.lines = name, (), {}, []
        counters.launches += 1
        counters.kernels[name] = counters.kernels.get(name, 0) + 1
        try:
            _record(self, name, args, kwargs, options)
            return call(self, *args, **kwargs)
        except Exception as exc:
            if isinstance(exc.__cause__, OutOfBounds):  # the interpreter wraps it; say it plainly
                raise exc.__cause__ from None
            raise
        finally:
            _end_program()
            counters.dram_bytes += _dram(_state.program_lines)
            _state.program_lines, _state.ranges = {}, None

    def grid_idx(builder: Any, x: int, y: int, z: int) -> Any:
        _end_program()
        _state.program = (x, y, z)
        counters.programs += 1
        return set_grid_idx(builder, x, y, z)

    executor._init_args_hst = init_args_hst
    executor.__call__ = launch
    type(_builder()).set_grid_idx = grid_idx


def _builder() -> Any:
    from triton.runtime import interpreter

    return interpreter.interpreter_builder


def _end_program() -> None:
    """File the lines the program that just ran loaded under its launch-order position."""
    if not _state.lines:
        return
    import numpy as np

    builder = _builder()
    gx, gy, _ = (int(d) for d in builder.grid_dim)
    x, y, z = _state.program
    linear = x + gx * (y + gy * z)
    _state.program_lines[linear] = np.unique(np.concatenate(_state.lines))
    _state.lines = []


def _dram(program_lines: dict[int, Any]) -> int:
    """Bytes loaded from DRAM: unique lines per wave of WAVE consecutive programs."""
    if not program_lines:
        return 0
    import numpy as np

    waves: dict[int, list[Any]] = {}
    for program, lines in program_lines.items():  # programs p and q run together when p // WAVE == q // WAVE
        waves.setdefault(program // WAVE, []).append(lines)
    return sum(int(np.unique(np.concatenate(wave)).size) * LINE for wave in waves.values())


def _tensors(values: list[Any]) -> list[Any]:
    found = []
    for value in values:
        if isinstance(value, tuple | list):
            found.extend(_tensors(list(value)))
        elif hasattr(value, "data_ptr") and hasattr(value, "element_size"):
            inner = getattr(value, "base", value)  # a TensorWrapper holds the tensor
            found.append(inner if hasattr(inner, "stride") else value)
    return found


TYPES = {
    "torch.float32": "fp32",
    "torch.float16": "fp16",
    "torch.bfloat16": "bf16",
    "torch.float64": "fp64",
    "torch.int8": "i8",
    "torch.int16": "i16",
    "torch.int32": "i32",
    "torch.int64": "i64",
    "torch.uint8": "u8",
    "torch.bool": "i1",
}


def _record(executor: Any, name: str, args: Any, kwargs: Any, options: dict[str, int]) -> None:
    """Keep the launch's kernel and signature for a compile check (the first MAX of them)."""
    if len(launches) >= MAX_RECORDED_LAUNCHES:
        return
    import inspect

    fn = executor.fn
    parameters = inspect.signature(fn).parameters
    try:
        bound = inspect.signature(fn).bind_partial(
            *args, **{k: v for k, v in kwargs.items() if k in parameters}
        )
    except TypeError:
        return
    signature: dict[str, str] = {}
    constexprs: dict[str, Any] = {}
    for arg in parameters:
        if arg not in bound.arguments:
            continue
        value = bound.arguments[arg]
        if arg in executor.constexprs:
            signature[arg] = "constexpr"
            constexprs[arg] = value
        elif hasattr(value, "data_ptr") and hasattr(value, "dtype"):
            kind = TYPES.get(str(value.dtype))
            if kind is None:
                return
            signature[arg] = f"*{kind}"
        elif isinstance(value, bool):
            signature[arg] = "i1"
        elif isinstance(value, int):
            signature[arg] = "i32" if -(2**31) <= value < 2**31 else "i64"
        elif isinstance(value, float):
            signature[arg] = "fp32"
        elif value is None:
            signature[arg] = "constexpr"
            constexprs[arg] = None
        else:
            return
    original = getattr(fn, "__wrapped__", fn)
    launch = Launch(name, getattr(original, "__module__", ""), signature, constexprs, options)
    launches.setdefault(launch.key(), launch)
