# expect: failed
# why: leaves the 1e-6 out of the coefficient (max_norm / total_norm, clamped at 1): identical for
#   ordinary gradients, so the public tests pass, but wrong where the gradients are tiny (a norm of
#   2e-6 with max_norm 1e-6 is scaled by 1/2 instead of 1/3), and NaN for zero gradients with
#   max_norm = 0
# caught-by: test_tiny_gradients, test_zero_gradients
import torch


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = torch.clamp(max_norm / total_norm, max=1.0)
    for g in grads:
        g.mul_(coef)
    return total_norm
