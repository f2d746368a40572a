# expect: failed
# why: the weights are used in the paper's (in, out) layout, x @ w_gate, where they are given in
#   nn.Linear's (out, in) layout: a shape error when d_ff != d_model, a wrong answer when they are equal
# caught-by: test_swiglu_square_weights, test_swiglu_random, test_swiglu_worked_example
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
    gate = xf @ wg  # the mistake: no transpose (here and below)
    up = xf @ wu
    return ((gate * torch.sigmoid(gate) * up) @ wd).to(x.dtype)
