# expect: failed
# why: clips each gradient by its own norm (min(1, max_norm / (||g|| + 1e-6)) per tensor) instead of
#   scaling all of them by one coefficient from the global norm: layers with small gradients keep
#   them, layers with large ones are cut, and the direction of the update changes
# caught-by: test_worked_example, test_random_params
import torch


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    for g in grads:
        coef = torch.clamp(max_norm / (torch.linalg.vector_norm(g) + 1e-6), max=1.0)
        g.mul_(coef)
    return total_norm
