# expect: failed
# why: nn.Dropout(p, inplace=True) on the branch's input: the base sees x first, so the output is
#   right, but in training mode the caller's x is zeroed and scaled in place
# caught-by: test_forward_leaves_x_unchanged
import math
import warnings

import torch
from torch import nn


class LoRALinear(nn.Module):
    """y = base(x) + (alpha / r) * dropout(x) @ A^T @ B^T, with the base layer frozen."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if r <= 0:
            raise ValueError(f"the rank r must be positive, got {r}")
        self.base = base  # shared, not copied: LoRA adds to a model, it does not duplicate it
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        weight = base.weight  # (out, in)
        out_features, in_features = weight.shape
        kind = {"dtype": weight.dtype, "device": weight.device}
        # A: (r, in), initialised like nn.Linear's own weight; B: (out, r), zero, so that
        # B @ A = 0 and the wrapped layer starts out computing exactly what the base computes
        self.lora_A = nn.Parameter(torch.empty(r, in_features, **kind))
        self.lora_B = nn.Parameter(torch.zeros(out_features, r, **kind))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout, inplace=True)  # "saves memory": writes into x
        self.merged = False
        for p in self.base.parameters():  # the pretrained weight and bias stay as they are
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # (..., out)
        if self.merged:  # the update already lives in base.weight: adding it again would double it
            return y
        # two thin matmuls through the rank-r bottleneck: (..., in) -> (..., r) -> (..., out),
        # never the (out, in) product B @ A
        h = self.dropout(x) @ self.lora_A.T  # (..., r)
        return y + (h @ self.lora_B.T) * self.scaling  # (..., out)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold scaling * B @ A into base.weight, so that inference costs one matmul."""
        if self.merged:
            warnings.warn("LoRALinear.merge(): already merged, nothing done", UserWarning, stacklevel=2)
            return
        self.base.weight += self.scaling * (self.lora_B @ self.lora_A)  # (out, in)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take scaling * B @ A back out of base.weight (to train on, or to swap adapters)."""
        if not self.merged:
            warnings.warn("LoRALinear.unmerge(): not merged, nothing done", UserWarning, stacklevel=2)
            return
        self.base.weight -= self.scaling * (self.lora_B @ self.lora_A)  # (out, in)
        self.merged = False


def lora_forward_backward(base, lora_A, lora_B, alpha, x, grad_output):
    """One forward and one backward pass through LoRALinear(base) with the given A and B; the
    output and the gradients of x, A and B. The grader's efficiency checks call this."""
    layer = LoRALinear(base, r=lora_A.shape[0], alpha=alpha)
    with torch.no_grad():
        layer.lora_A.copy_(lora_A)
        layer.lora_B.copy_(lora_B)
    x = x.detach().requires_grad_()
    y = layer(x)
    y.backward(grad_output)
    return y.detach(), x.grad, layer.lora_A.grad, layer.lora_B.grad
