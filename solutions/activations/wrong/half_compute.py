# expect: failed
# why: float16 and bfloat16 inputs are computed in their own dtype: 1 + erf(...) and 1 + tanh(...)
#   cancel for negative x and half precision keeps too few digits (bfloat16 gelu_tanh(-3) is -0.00586
#   instead of -0.00363)
# caught-by: test_dtypes, test_half_precision_negative_tail, test_float16_in_float16_out
import math

import torch


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))  # the mistake: no float32 detour


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x * torch.sigmoid(x)


def swiglu(x, w_gate, w_up, w_down):
    gate = x @ w_gate.T
    up = x @ w_up.T
    return (silu(gate) * up) @ w_down.T
