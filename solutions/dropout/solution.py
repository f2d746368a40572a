"""Inverted dropout: the reference solution."""

import torch

HALF = (torch.float16, torch.bfloat16)


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, seed: int = 0) -> torch.Tensor:
    """Zero each element of x with probability p and scale the survivors by 1 / (1 - p)."""
    if not 0.0 <= p <= 1.0:  # NaN fails both comparisons, so it is refused too
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training:
        return x  # evaluation: the identity, as F.dropout(x, p, training=False) returns its input
    generator = torch.Generator().manual_seed(seed)
    # one float32 number per element, whatever x's dtype: a seed gives the same mask for every dtype
    u = torch.rand(x.shape, generator=generator, dtype=torch.float32)
    keep = u >= p  # P(u >= p) = 1 - p exactly: p = 0 keeps everything, p = 1 nothing
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)  # p = 1: zeros, never 0 * inf
    compute = torch.float32 if x.dtype in HALF else x.dtype
    return (x.to(compute) * keep * scale).to(x.dtype)  # a new tensor: x itself is never written
