# expect: failed
# why: computes bfloat16 inputs in float16, for its 11 bits of precision against bfloat16's 8, and
#   casts back: but float16's range ends at 65504, so rows with features past 256 overflow (x^2 is
#   inf) and come out as zeros, which bfloat16 itself would have held
# caught-by: test_half_precision_large_values
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    out_dtype = x.dtype
    if out_dtype == torch.float16:
        x = x.float()
    elif out_dtype == torch.bfloat16:  # the mistake: float16 is more precise, but overflows
        x = x.half()
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (y * weight.to(x.dtype)).to(out_dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
