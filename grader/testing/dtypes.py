"""Dtype sweeps: parameters for the floating dtypes, and tolerances for computed results.

`assert_close` defaults to elementwise tolerances (those of torch.testing). A result computed
through reductions in a low precision drifts more; `tolerance(dtype)` gives the looser pair
suited to that, per dtype, so a sweep compares each dtype fairly.
"""

from __future__ import annotations

from typing import Any

import pytest

# (rtol, atol) for results computed through sums, softmaxes and matmuls in the given dtype
COMPUTED: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-9),
    "float32": (1e-5, 1e-4),
    "float16": (2e-3, 2e-3),
    "bfloat16": (2e-2, 2e-2),
}


def dtype_params(*names: str) -> list[Any]:
    """`pytest.param(torch.<name>, id=name)` for each name (default: float32, float16, bfloat16)."""
    import torch

    chosen = names or ("float32", "float16", "bfloat16")
    return [pytest.param(getattr(torch, name), id=name) for name in chosen]


def tolerance(dtype: Any) -> dict[str, float]:
    """`rtol` and `atol` for `assert_close` on a result computed in `dtype`."""
    name = str(dtype).removeprefix("torch.")
    rtol, atol = COMPUTED.get(name, (0.0, 0.0))
    return {"rtol": rtol, "atol": atol}
