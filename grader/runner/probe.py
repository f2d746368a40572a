"""An in-runner probe: what a call allocates and computes, seen through torch's dispatcher.

It catches honest design mistakes (materialising an N x N score matrix, building the full LoRA
delta-W, a Python loop issuing one op per row), not cheating: it runs in the submission's own
process, so every figure it reports is marked runner-reported by the harness.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def measure(fn: Any, args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    stats: dict[str, Any] = {"max_alloc_bytes": 0, "max_alloc_shape": [], "max_alloc_op": "", "ops": 0}
    histogram: Counter[str] = Counter()

    class Allocations(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            name = str(func.overloadpacket.__name__)
            histogram[name] += 1
            stats["ops"] += 1
            if not getattr(func, "is_view", False):
                for tensor in _tensors(out):
                    size = tensor.numel() * tensor.element_size()
                    if size > stats["max_alloc_bytes"]:
                        stats.update(
                            max_alloc_bytes=size, max_alloc_shape=list(tensor.shape), max_alloc_op=name
                        )
            return out

    flops = FlopCounterMode(display=False)
    with flops, Allocations():
        out = fn(*args, **kwargs)
    stats["flops"] = int(flops.get_total_flops())
    stats["op_histogram"] = dict(histogram.most_common(12))
    return out, stats


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []
