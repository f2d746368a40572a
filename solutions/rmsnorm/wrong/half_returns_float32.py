# expect: failed
# why: normalises in float32 but never casts back (Llama's `.type_as(x)` then a float32 gain),
#   so a float16 input gives a float32 output
# caught-by: test_dtypes, test_float16_in_float16_out
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
