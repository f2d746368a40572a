# expect: failed
# why: samples Kaiming from the uniform distribution U(-sqrt(3) std, sqrt(3) std) (kaiming_uniform_,
#   the family of nn.Linear's default): the right variance, but not the normal distribution asked for
# caught-by: test_kaiming_normal_distribution
import math

import torch

LINEAR_FNS = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)


def fan_in_and_fan_out(shape):
    if len(shape) < 2:
        raise ValueError("need at least 2 dimensions")
    k = math.prod(shape[2:])
    return shape[1] * k, shape[0] * k


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def xavier_uniform(shape, gain=1.0, *, seed, dtype=torch.float32):
    fan_in, fan_out = fan_in_and_fan_out(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    g = torch.Generator().manual_seed(seed)
    return torch.empty(tuple(shape), dtype=dtype).uniform_(-bound, bound, generator=g)


def kaiming_normal(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", *, seed, dtype=torch.float32):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"bad mode {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    g = torch.Generator().manual_seed(seed)
    bound = math.sqrt(3.0) * std  # the mistake: uniform with the right variance
    return torch.empty(tuple(shape), dtype=dtype).uniform_(-bound, bound, generator=g)
