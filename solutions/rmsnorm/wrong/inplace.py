# expect: failed
# why: normalises x in place (its float32 or float64 copy is x itself, then *=): the caller's x,
#   the residual stream it adds the block's output to, is overwritten with the normalised values
# caught-by: test_inputs_unchanged
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    out_dtype = x.dtype
    y = x.to(torch.promote_types(x.dtype, torch.float32))  # x itself for float32 and float64
    y *= torch.rsqrt(y.pow(2).mean(dim=-1, keepdim=True) + eps)
    y *= weight.float()
    return y.to(out_dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
