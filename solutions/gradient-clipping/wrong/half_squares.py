# expect: failed
# why: computes the norm as the square root of a sum of squares taken in the gradients' own dtype:
#   right in float32, so the public tests pass, but a float16 sum of squares overflows past 65504,
#   the norm comes out inf, and every gradient is zeroed
# caught-by: test_float16_large_gradients
import torch


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.sqrt(sum((g * g).sum() for g in grads))
    coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return total_norm
