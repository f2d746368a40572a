# expect: failed
# why: gelu computed as x * sigmoid(1.702 x), the sigmoid approximation (CLIP's quick_gelu), which is
#   off the exact GELU by up to 0.02
# caught-by: test_gelu_worked_example, test_random_inputs
import math

import torch

HALF = (torch.float16, torch.bfloat16)


def _up(x):
    return x.float() if x.dtype in HALF else x


def gelu(x):
    xf = _up(x)
    return (xf * torch.sigmoid(1.702 * xf)).to(x.dtype)  # the mistake: an approximation, not erf


def gelu_tanh(x):
    xf = _up(x)
    inner = math.sqrt(2.0 / math.pi) * (xf + 0.044715 * xf**3)
    return (0.5 * xf * (1.0 + torch.tanh(inner))).to(x.dtype)


def silu(x):
    xf = _up(x)
    return (xf * torch.sigmoid(xf)).to(x.dtype)


def swiglu(x, w_gate, w_up, w_down):
    xf, wg, wu, wd = (_up(t) for t in (x, w_gate, w_up, w_down))
    gate = xf @ wg.T
    up = xf @ wu.T
    return ((gate * torch.sigmoid(gate) * up) @ wd.T).to(x.dtype)
