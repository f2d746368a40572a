"""RMSNorm: the reference solution."""

import torch
from torch import nn

HALF = (torch.float16, torch.bfloat16)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(mean(x^2 over the last dim) + eps) * weight, in x's dtype."""
    out_dtype = x.dtype
    if out_dtype in HALF:
        # float16 overflows past 65504 (x^2 of 256 already does) and half sums round badly
        x = x.float()
    # the mean square of each row, kept as (..., 1) so that it broadcasts over the row
    ms = x.pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
    y = x * torch.rsqrt(ms + eps)  # eps inside the root: a zero row gives 0, not 0 / 0
    y = y * weight.to(x.dtype)  # (..., dim) * (dim,): one gain per feature
    return y.to(out_dtype)


class RMSNorm(nn.Module):
    """Root-mean-square normalisation over the last dimension, with a learnable gain."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # (dim,): starts as the identity gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)
