# expect: failed
# why: takes the global norm as the sum of the per-tensor norms (||g1|| + ||g2|| + ...) instead of
#   the root of the sum of their squares: the norm is overstated and gradients are clipped too hard
# caught-by: test_worked_example, test_random_params
import torch


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.stack([torch.linalg.vector_norm(g) for g in grads]).sum()
    coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return total_norm
