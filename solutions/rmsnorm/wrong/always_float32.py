# expect: failed
# why: converts every input to float32, as Llama's code does (hidden_states.to(torch.float32)),
#   float64 included: a float64 input comes back in float64 but with float32's precision, about
#   1e-7 relative error where float64 gives 1e-16
# caught-by: test_float64_stays_float64
import torch
from torch import nn


def rms_norm(x, weight, eps=1e-6):
    out_dtype = x.dtype
    x = x.to(torch.float32)  # the mistake: float64 is narrowed too
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (y * weight.to(torch.float32)).to(out_dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)
