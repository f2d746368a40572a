# expect: failed
# why: SiLU applied to the up projection instead of the gate: silu(x @ w_up.T) * (x @ w_gate.T), a
#   different function (Llama weights loaded into it give garbage)
# caught-by: test_swiglu_worked_example, test_swiglu_random, test_swiglu_gradients
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
    return (xf * torch.sigmoid(xf)).to(x.dtype)


def swiglu(x, w_gate, w_up, w_down):
    xf, wg, wu, wd = (_up(t) for t in (x, w_gate, w_up, w_down))
    gate = xf @ wg.T
    up = xf @ wu.T
    return ((up * torch.sigmoid(up) * gate) @ wd.T).to(x.dtype)  # the mistake: SiLU on up
