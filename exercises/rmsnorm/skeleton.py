"""RMSNorm: root-mean-square normalisation, as in Llama, Mistral and most recent LLMs.

Fill in `rms_norm` and the `RMSNorm` module below. Read README.md first: it explains every
convention used here.
"""

import torch
from torch import nn


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Normalise every vector along the last dimension of x by its root mean square, then scale.

        y = x / sqrt(mean(x^2, over the last dim) + eps) * weight

    Shapes: x is (..., dim) with any number of leading dims (also none); weight is (dim,);
    the output has the shape of x.

    eps goes INSIDE the square root (added to the mean square), never to the root itself.

    Dtypes: the output has the dtype of x. For float16 and bfloat16 inputs, compute in float32
    (the squares, the mean, the root, the product with the weight) and cast the result back to
    x's dtype once, at the end (the tests allow one unit in the last place of the exact result).
    float32 and float64 inputs are computed in their own dtype.

    Leave x and weight as they were: no in-place operations on them (x.float() is x itself when x
    is float32, so `y = x.float(); y *= ...` overwrites the caller's x).

    No Python loop over rows: a handful of tensor operations on the whole of x.
    Not allowed: torch.nn.functional.rms_norm and torch.nn.RMSNorm.
    """
    raise NotImplementedError("rms_norm: normalise x by the root mean square of its last dim")


class RMSNorm(nn.Module):
    """RMSNorm as a layer: a learnable gain `weight` of shape (dim,), initialised to ones.

    RMSNorm(dim, eps=1e-6)(x) == rms_norm(x, layer.weight, layer.eps)
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        # store eps as self.eps, and the gain as self.weight: an nn.Parameter of dim ones
        raise NotImplementedError("RMSNorm.__init__: create self.eps and self.weight")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., dim) -> (..., dim), normalised over the last dim and scaled by self.weight."""
        raise NotImplementedError("RMSNorm.forward: call rms_norm with this layer's weight and eps")
