# expect: failed
# why: LayerNorm with the unbiased variance (x.var(dim=-1), torch's default, divides by d - 1):
#   the normalised vectors come out smaller by sqrt((d - 1) / d)
# caught-by: test_layer_norm_worked_example, test_layer_norm_random_shapes, test_layer_norm_gradients

import torch

HALF = (torch.float16, torch.bfloat16)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for half-precision inputs (too few bits for a mean and a variance), else x's own."""
    return torch.float32 if x.dtype in HALF else x.dtype


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dim, var biased; in x's dtype."""
    dtype = _compute_dtype(x)
    xf = x.to(dtype)  # x itself for float32 and float64: nothing below writes into it
    mean = xf.mean(dim=-1, keepdim=True)  # (..., 1): one mean per vector
    centred = xf - mean
    # two passes: the variance is the mean square of the centred values (never E[x^2] - E[x]^2,
    # which cancels catastrophically when the mean is large against the spread)
    var = xf.var(dim=-1, keepdim=True)  # the mistake: unbiased by default, divided by d - 1
    y = centred * torch.rsqrt(var + eps)  # eps inside the root: a constant row gives 0, not 0 / 0
    return (y * weight.to(dtype) + bias.to(dtype)).to(x.dtype)


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
    """BatchNorm1d on (N, C) or (N, C, L): the output and the new running mean and variance."""
    dtype = _compute_dtype(x)
    xf = x.to(dtype)
    dims = (0,) if x.dim() == 2 else (0, 2)  # every dim but the channels
    shape = (1, -1) if x.dim() == 2 else (1, -1, 1)  # (C,) -> broadcastable against x
    if training:
        n = x.numel() // x.shape[1]  # values per channel: N, or N * L
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {x.shape}"
            )
        mean = xf.mean(dim=dims)  # (C,)
        var = (xf - mean.view(shape)).pow(2).mean(dim=dims)  # (C,), biased: normalises the batch
        with torch.no_grad():  # the running statistics are bookkeeping, not part of the graph
            unbiased = var * (n / (n - 1))  # what the running variance tracks
            new_mean = (1 - momentum) * running_mean + momentum * mean.to(running_mean.dtype)
            new_var = (1 - momentum) * running_var + momentum * unbiased.to(running_var.dtype)
    else:
        mean, var = running_mean.to(dtype), running_var.to(dtype)
        new_mean, new_var = running_mean.clone(), running_var.clone()
    y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)
    y = y * weight.to(dtype).view(shape) + bias.to(dtype).view(shape)
    return y.to(x.dtype), new_mean, new_var
