"""LoRA: fine-tune a frozen linear layer through a trainable low-rank update.

Fill in the LoRALinear class below. Read README.md first: it explains every convention used here.
Keep `lora_forward_backward` at the end of the file as it is: the grader's efficiency checks call it.
"""

import math  # noqa: F401 - for nn.init.kaiming_uniform_(..., a=math.sqrt(5))
import warnings  # noqa: F401 - for warnings.warn in merge() and unmerge()

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update:

        y = base(x) + scaling * dropout(x) @ lora_A^T @ lora_B^T,    scaling = alpha / r

    Attributes (the tests read them by these names):
        base     the nn.Linear given, kept as it is (not copied), its weight and bias frozen
                 (requires_grad False)
        lora_A   nn.Parameter of shape (r, in_features), initialised like nn.Linear's weight:
                 nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        lora_B   nn.Parameter of shape (out_features, r), initialised to zeros
        scaling  alpha / r (a float)
        A and B have the dtype and device of base.weight. The trainable parameters are exactly
        lora_A and lora_B: r * (in_features + out_features) numbers.

    Dropout (probability `dropout`, default 0.0) applies to the input of the LoRA branch only;
    the base layer always sees x unchanged, and so does the caller: no in-place dropout on x.
    A rank r <= 0 raises ValueError.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        raise NotImplementedError("LoRALinear.__init__: keep base, freeze it, create lora_A and lora_B")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) -> (..., out_features), any number of leading dims (also none).

        Go through the rank-r bottleneck: x @ A^T is (..., r), then @ B^T is (..., out). Never
        build the (out_features, in_features) product B @ A here. Once merged, the update is
        already inside base.weight: return base(x) alone.
        """
        raise NotImplementedError("LoRALinear.forward: base(x) plus the scaled low-rank branch")

    def merge(self) -> None:
        """Add scaling * lora_B @ lora_A into base.weight (without tracking gradients), so that
        the layer computes the same outputs with one matmul. Calling merge() on a layer that is
        already merged changes nothing and emits a warning (warnings.warn)."""
        raise NotImplementedError("LoRALinear.merge: fold the update into base.weight, once")

    def unmerge(self) -> None:
        """Subtract scaling * lora_B @ lora_A from base.weight again, undoing merge(). Calling
        unmerge() on a layer that is not merged changes nothing and emits a warning."""
        raise NotImplementedError("LoRALinear.unmerge: take the update back out of base.weight, once")


# ------------------------------------------------------------------------------------------
# Given: leave this function as it is. The grader's efficiency checks call it to run one forward
# and one backward pass through your layer.


def lora_forward_backward(base, lora_A, lora_B, alpha, x, grad_output):
    """One forward and one backward pass through LoRALinear(base) with the given A and B; the
    output and the gradients of x, A and B."""
    layer = LoRALinear(base, r=lora_A.shape[0], alpha=alpha)
    with torch.no_grad():
        layer.lora_A.copy_(lora_A)
        layer.lora_B.copy_(lora_B)
    x = x.detach().requires_grad_()
    y = layer(x)
    y.backward(grad_output)
    return y.detach(), x.grad, layer.lora_A.grad, layer.lora_B.grad
