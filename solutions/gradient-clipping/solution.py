"""Reference solution: clip the gradients of a list of parameters by their global L2 norm, in place,
as torch.nn.utils.clip_grad_norm_ does (with its default error_if_nonfinite=False)."""

import torch


def clip_grad_norm_(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    # each gradient's norm (vector_norm accumulates half precision in float32), then the norm of
    # those norms: the L2 norm of all gradients laid end to end, in the gradients' dtype
    norms = [torch.linalg.vector_norm(g) for g in grads]
    total_norm = torch.linalg.vector_norm(torch.stack(norms))
    clip_coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(clip_coef)
    return total_norm
