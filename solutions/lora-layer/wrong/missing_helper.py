# expect: failed
# why: the given lora_forward_backward was deleted (the layer itself is right): the efficiency checks
#   call it, and the grader names the missing helper instead of reporting a bare AttributeError
# caught-by: test_lora_forward_backward_kept
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
        self.dropout = nn.Dropout(dropout)
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
