# expect: failed
# why: float16 inputs are squared in float16, where values past 256 overflow to inf
# caught-by: test_half_precision_large_values, test_dtypes
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y * weight.to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
