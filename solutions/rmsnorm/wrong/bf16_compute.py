# expect: failed
# why: upcasts float16 (whose range overflows) but computes bfloat16 in bfloat16, reasoning that it
#   has float32's range: every square, the mean, the root and both products are rounded to 8 bits,
#   so the result is off by two or three units in the last place instead of at most half of one
# caught-by: test_dtypes
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    out_dtype = x.dtype
    if out_dtype == torch.float16:  # the mistake: bfloat16 needs float32 just as much
        x = x.float()
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (y * weight.to(x.dtype)).to(out_dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
