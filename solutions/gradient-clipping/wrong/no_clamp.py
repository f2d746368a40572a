# expect: failed
# why: multiplies by max_norm / (total_norm + 1e-6) without clamping it at 1, so gradients below the
#   limit are scaled UP to norm max_norm: "clipping" turns into normalising every step
# caught-by: test_below_the_limit, test_random_params
import torch


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = max_norm / (total_norm + 1e-6)
    for g in grads:
        g.mul_(coef)
    return total_norm
