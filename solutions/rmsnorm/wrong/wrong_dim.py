# expect: failed
# why: takes the mean over dim=1, written for (tokens, features) inputs: on (B, T, C) activations
#   it averages over the tokens instead of the features
# caught-by: test_random_shapes, test_rows_are_independent
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    out_dtype = x.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    dim = 1 if x.dim() > 1 else 0
    y = x * torch.rsqrt(x.pow(2).mean(dim=dim, keepdim=True) + eps)
    return (y * weight.to(x.dtype)).to(out_dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
