# expect: failed
# why: eps is added to the root instead of the mean square: x / (sqrt(mean(x^2)) + eps)
# caught-by: test_eps_placement, test_eps_inside_the_root
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    out_dtype = x.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    rms = x.pow(2).mean(dim=-1, keepdim=True).sqrt()
    return (x / (rms + eps) * weight.to(x.dtype)).to(out_dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
