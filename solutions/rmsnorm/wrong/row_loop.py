# expect: too_slow
# why: correct, but normalises one row at a time in a Python loop (a few tensor ops per row)
# caught-by: test_speed
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    out_dtype = x.dtype
    compute = torch.float32 if out_dtype in (torch.float16, torch.bfloat16) else out_dtype
    rows = x.reshape(-1, x.shape[-1])  # (N, dim)
    out = torch.empty(rows.shape, dtype=out_dtype)
    w = weight.to(compute)
    for i in range(rows.shape[0]):
        row = rows[i].to(compute)
        out[i] = (row * torch.rsqrt(row.pow(2).mean() + eps) * w).to(out_dtype)
    return out.reshape(x.shape)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
