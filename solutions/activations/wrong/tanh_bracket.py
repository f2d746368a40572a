# expect: failed
# why: in gelu_tanh, sqrt(2 / pi) multiplies only x and not the whole bracket (x + 0.044715 x^3)
# caught-by: test_gelu_tanh_worked_example, test_random_inputs
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
    inner = math.sqrt(2.0 / math.pi) * xf + 0.044715 * xf**3  # the mistake: the constant on x only
    return (0.5 * xf * (1.0 + torch.tanh(inner))).to(x.dtype)


def silu(x):
    xf = _up(x)
    return (xf * torch.sigmoid(xf)).to(x.dtype)


def swiglu(x, w_gate, w_up, w_down):
    xf, wg, wu, wd = (_up(t) for t in (x, w_gate, w_up, w_down))
    gate = xf @ wg.T
    up = xf @ wu.T
    return ((gate * torch.sigmoid(gate) * up) @ wd.T).to(x.dtype)
