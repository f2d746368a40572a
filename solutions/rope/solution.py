"""Rotary position embeddings (RoPE), interleaved adjacent pairs: the reference solution."""

import torch


def apply_rope(x: torch.Tensor, token_positions: torch.Tensor, *, theta: float = 10000.0) -> torch.Tensor:
    """Rotate each pair (x[..., 2i], x[..., 2i+1]) by the angle pos * theta^(-2i/d)."""
    d = x.shape[-1]
    if d % 2 != 0:
        raise ValueError(f"the last dimension must be even, got {d}")
    out_dtype = x.dtype
    # half precision cannot hold an angle like 1234.5 rad to any useful accuracy: work in float32
    # (or in float64 when that is what we were given)
    dtype = torch.promote_types(x.dtype, torch.float32)

    i = torch.arange(d // 2, device=x.device, dtype=dtype)  # (d/2,)
    inv_freq = theta ** (-2.0 * i / d)  # (d/2,) from 1 down towards 1/theta
    # one angle per (position, pair); the positions broadcast against x's leading dims
    angles = token_positions.to(device=x.device, dtype=dtype).unsqueeze(-1) * inv_freq  # (..., seq, d/2)
    cos, sin = angles.cos(), angles.sin()

    x = x.to(dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., seq, d/2) each: the two members of every pair
    # the 2-D rotation [[cos, -sin], [sin, cos]] applied to every pair at once
    out_even = x_even * cos - x_odd * sin
    out_odd = x_even * sin + x_odd * cos
    out = torch.stack((out_even, out_odd), dim=-1).flatten(-2)  # (..., seq, d/2, 2) -> (..., seq, d)
    return out.to(out_dtype)
