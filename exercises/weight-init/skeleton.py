"""Weight initialisation: Xavier-uniform and Kaiming-normal, as torch.nn.init computes them.

Fill in the four functions below. Read README.md first: it explains every convention used here.
"""

import math  # noqa: F401 - math.sqrt and math.prod will be useful
from collections.abc import Sequence

import torch


def fan_in_and_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape, as torch.nn.init._calculate_fan_in_and_fan_out.

    shape is (out, in) for a Linear weight, (out_channels, in_channels, *kernel_size) for a
    convolution. With k = the product of shape[2:] (1 when there are only two dimensions):
        fan_in = shape[1] * k,   fan_out = shape[0] * k
    Returns a tuple of two ints. Fewer than 2 dimensions: raise ValueError.

    Example: (256, 512) -> (512, 256);  (128, 64, 3, 3) -> (576, 1152).
    """
    raise NotImplementedError("fan_in_and_fan_out: in and out times the receptive field size")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain torch.nn.init.calculate_gain recommends for `nonlinearity`:

        "linear", "conv1d", "conv2d", "conv3d",
        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid"   -> 1
        "tanh"                                                                   -> 5 / 3
        "relu"                                                                   -> sqrt(2)
        "leaky_relu"   -> sqrt(2 / (1 + negative_slope ** 2)), negative_slope = param (0.01 if None)
        "selu"                                                                   -> 3 / 4

    param matters for "leaky_relu" only (ignored otherwise). Any other name (names are
    case-sensitive) raises ValueError.
    """
    raise NotImplementedError("calculate_gain: one value per nonlinearity")


def xavier_uniform(
    shape: Sequence[int], gain: float = 1.0, *, seed: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A new tensor of `shape` and `dtype` drawn from U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).

    Draw from a fresh torch.Generator().manual_seed(seed), passed as generator= to the sampling
    call (never torch's global generator): the same seed gives the same tensor.
    Fewer than 2 dimensions: ValueError.
    """
    raise NotImplementedError("xavier_uniform: the bound from the fans and the gain, then U(-a, a)")


def kaiming_normal(
    shape: Sequence[int],
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    seed: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A new tensor of `shape` and `dtype` drawn from N(0, std^2), std = gain / sqrt(fan).

    gain = calculate_gain(nonlinearity, a): `a` is the negative slope of a leaky ReLU (the
    defaults, a = 0 with "leaky_relu", give sqrt(2)). fan = fan_in for mode="fan_in", fan_out for
    mode="fan_out"; any other mode raises ValueError, as does a shape of fewer than 2 dimensions.

    Draw from a fresh torch.Generator().manual_seed(seed), passed as generator= to the sampling
    call (never torch's global generator): the same seed gives the same tensor.
    """
    raise NotImplementedError("kaiming_normal: std from the gain and the fan, then N(0, std^2)")
