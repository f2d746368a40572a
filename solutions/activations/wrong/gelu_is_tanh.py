# expect: failed
# why: gelu uses the tanh formula, taking GPT-2's "gelu" for the exact one: off by up to 5e-4, far
#   beyond float32's tolerance
# caught-by: test_gelu_worked_example, test_random_inputs, test_dtypes
import math

import torch

HALF = (torch.float16, torch.bfloat16)


def _up(x):
    return x.float() if x.dtype in HALF else x


def gelu(x):
    return gelu_tanh(x)  # the mistake: the approximation is not the exact GELU


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
