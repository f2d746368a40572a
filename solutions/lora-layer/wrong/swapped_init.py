# expect: failed
# why: A starts at zero and B random (the initialisations swapped): the output still starts as the
#   base's, but B gets no gradient at the first step
# caught-by: test_initialisation, test_gradient_of_b_at_the_start
import math
import warnings

import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        if r <= 0:
            raise ValueError("r must be positive")
        self.base = base
        self.scaling = alpha / r
        out_features, in_features = base.weight.shape
        self.lora_A = nn.Parameter(torch.zeros(r, in_features, dtype=base.weight.dtype))
        self.lora_B = nn.Parameter(torch.empty(out_features, r, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        self.merged = False
        for p in self.base.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        y = self.base(x)
        if self.merged:
            return y
        return y + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    @torch.no_grad()
    def merge(self):
        if self.merged:
            warnings.warn("already merged", stacklevel=2)
            return
        self.base.weight += self.scaling * (self.lora_B @ self.lora_A)
        self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if not self.merged:
            warnings.warn("not merged", stacklevel=2)
            return
        self.base.weight -= self.scaling * (self.lora_B @ self.lora_A)
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
