# expect: failed
# why: silu written as x / (1 + exp(-x)), in float32: the forward pass is right everywhere (x / inf = 0),
#   but autograd differentiates it through exp(-x), and once exp(-x) overflows (x < -88.7) the gradient
#   is 0 * inf = NaN; only the hidden gradient test at large |x| sees it
# caught-by: test_gradients_large_inputs
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


def silu(x):
    xf = _up(x)
    return (xf / (1.0 + torch.exp(-xf))).to(x.dtype)  # the mistake: its backward is NaN for x < -88.7


def swiglu(x, w_gate, w_up, w_down):
    xf, wg, wu, wd = (_up(t) for t in (x, w_gate, w_up, w_down))
    gate = xf @ wg.T
    up = xf @ wu.T
    return ((gate * torch.sigmoid(gate) * up) @ wd.T).to(x.dtype)
