# expect: failed
# why: the sigmoid written as exp(x) / (1 + exp(x)): exp(x) overflows past x = 88.7 in float32, and
#   inf / inf is NaN, so silu of every large positive input is NaN
# caught-by: test_large_inputs, test_swiglu_large_gate
import math

import torch

HALF = (torch.float16, torch.bfloat16)


def _up(x):
    return x.float() if x.dtype in HALF else x


def gelu(x):
    xf = _up(x)
    return (0.5 * xf * (1.0 + torch.erf(xf / math.sqrt(2.0)))).to(x.dtype)


def gelu_tanh(x):
    xf = _up(x)
    inner = math.sqrt(2.0 / math.pi) * (xf + 0.044715 * xf**3)
    return (0.5 * xf * (1.0 + torch.tanh(inner))).to(x.dtype)


def _sigmoid(x):
    e = torch.exp(x)
    return e / (1.0 + e)  # the mistake: inf / inf for x > 88.7


def silu(x):
    xf = _up(x)
    return (xf * _sigmoid(xf)).to(x.dtype)


def swiglu(x, w_gate, w_up, w_down):
    xf, wg, wu, wd = (_up(t) for t in (x, w_gate, w_up, w_down))
    gate = xf @ wg.T
    up = xf @ wu.T
    return ((gate * _sigmoid(gate) * up) @ wd.T).to(x.dtype)
