"""LayerNorm and BatchNorm, as PyTorch computes them. Save this file as norms.py and fill in
layer_norm and batch_norm. Read README.md first: it explains every convention used here."""

import torch


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise every vector along the last dimension of x, then scale and shift it.

        y = (x - mean) / sqrt(var + eps) * weight + bias

    mean and var are taken over the LAST dim, one pair per vector; var is the BIASED variance
    (divided by d, not d - 1); eps goes INSIDE the square root. Compute var in two passes
    (mean first, then the mean of (x - mean)^2), never as mean(x^2) - mean(x)^2.
    Equals torch.nn.functional.layer_norm(x, (d,), weight, bias, eps).

    Shapes: x is (..., d) with any number of leading dims (also none); weight and bias are (d,);
    the output has the shape of x. A constant vector gives bias (never NaN).

    Dtypes: the output has x's dtype. float16 / bfloat16 inputs are converted to float32 (weight
    and bias too), computed there, and cast back to x's dtype once, at the end; float32 and
    float64 are computed in their own dtype.

    Leave x, weight and bias as they were: no in-place operations on them.
    Not allowed: torch.nn.functional.layer_norm, torch.layer_norm, torch.nn.LayerNorm.

    Example: x = [2, 4, 6, 8], weight = ones, bias = zeros -> [-1.3416, -0.4472, 0.4472, 1.3416]
    """
    raise NotImplementedError("layer_norm: mean and biased variance over the last dim, then weight and bias")


def batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BatchNorm1d: normalise each channel (dim 1) of x, and return the new running statistics.

    Shapes: x is (N, C) or (N, C, L); running_mean, running_var, weight and bias are (C,).
    Returns the tuple (y, new_running_mean, new_running_var): y has x's shape, the statistics (C,).

    training=True:
        per channel, over dim 0 (and dim 2 for (N, C, L)), n = N (or N * L) values:
        y = (x - batch_mean) / sqrt(batch_var + eps) * weight + bias     batch_var BIASED (/ n)
        new_running_mean = (1 - momentum) * running_mean + momentum * batch_mean
        new_running_var  = (1 - momentum) * running_var  + momentum * batch_var * n / (n - 1)
        With one value per channel (n == 1) raise ValueError, as PyTorch does.
        The gradient of y must flow through batch_mean and batch_var too; the running
        statistics need no gradient.
    training=False:
        y = (x - running_mean) / sqrt(running_var + eps) * weight + bias
        the returned running statistics equal the given ones.

    Equals torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training,
    momentum, eps), except that the new running statistics are returned as new tensors: leave
    x, running_mean, running_var, weight and bias as they were (no in-place operations).

    Dtypes: y has x's dtype. float16 / bfloat16 x are computed in float32 and cast back once at
    the end (the running statistics, weight and bias are float32 then); float32 and float64 are
    computed in their own dtype. The new running statistics have the running statistics' dtype.

    Not allowed: torch.nn.functional.batch_norm, torch.batch_norm, torch.nn.BatchNorm1d.
    """
    raise NotImplementedError("batch_norm: batch or running statistics per channel, and the running update")
