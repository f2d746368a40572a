"""Gradient clipping by the global L2 norm, as torch.nn.utils.clip_grad_norm_ does it.

Fill in `clip_grad_norm_` below. Read README.md first: it explains every convention used here.
"""

import torch


def clip_grad_norm_(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients of `parameters` in place so that their global L2 norm is at most max_norm.

    parameters: a list of tensors (created with requires_grad=True) of any shapes; each p.grad is
        a tensor of p's shape and dtype, or None. Parameters whose .grad is None are skipped: they
        add nothing to the norm, and their .grad stays None.

        total_norm = sqrt(sum over the gradients g of ||g||^2)     (the norm of the per-tensor norms)
        clip_coef  = min(max_norm / (total_norm + 1e-6), 1.0)
        every g   <- g * clip_coef, IN PLACE (g.mul_(...): scale the tensor in p.grad, do not
                     replace it with a new one); the parameters' own values are left alone.

    Returns total_norm, the norm BEFORE clipping, as a 0-dim tensor in the gradients' dtype.
    With no gradients at all (empty list, or every .grad None): change nothing, return
    torch.tensor(0.0).

    float16 / bfloat16 gradients: no sum of squares in float16 (it overflows past 65504);
    torch.linalg.vector_norm accumulates in float32 internally. The returned norm and the
    gradients keep the gradients' dtype.

    Non-finite norms follow the formula, as torch's default error_if_nonfinite=False does: an inf
    norm gives a coefficient of 0 (finite entries -> 0, inf entries -> NaN), a NaN norm makes every
    gradient NaN; the non-finite norm is returned. Nothing is raised.

    Not allowed: torch.nn.utils.clip_grad_norm_, get_total_norm, clip_grads_with_norm_.
    """
    raise NotImplementedError("clip_grad_norm_: compute the global norm, then scale every .grad in place")
