# expect: failed
# why: reseeds torch's global generator (torch.manual_seed(seed)) and draws from it: the same numbers
#   as a private generator, but every other user of the global generator gets its stream restarted
# caught-by: test_global_generator_left_alone
"""Weight initialisation, Xavier and Kaiming: the reference solution."""

import math
from collections.abc import Sequence

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


def fan_in_and_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape: (out, in, *kernel) -> (in * k, out * k)."""
    if len(shape) < 2:
        raise ValueError("fan_in and fan_out need a weight of at least 2 dimensions")
    receptive_field = math.prod(shape[2:])  # 1 for a Linear weight (no kernel dims)
    return int(shape[1]) * receptive_field, int(shape[0]) * receptive_field


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain torch.nn.init.calculate_gain recommends for `nonlinearity`."""
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01  # calculate_gain's default slope, as F.leaky_relu's
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def xavier_uniform(
    shape: Sequence[int], gain: float = 1.0, *, seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)), from a generator seeded with `seed`."""
    fan_in, fan_out = fan_in_and_fan_out(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # U(-a, a) has variance a^2 / 3
    torch.manual_seed(seed)
    return torch.empty(tuple(shape), dtype=dtype).uniform_(-bound, bound)


def kaiming_normal(
    shape: Sequence[int],
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    seed: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """N(0, std^2) with std = gain / sqrt(fan), from a generator seeded with `seed`."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    torch.manual_seed(seed)
    return torch.empty(tuple(shape), dtype=dtype).normal_(0.0, std)
