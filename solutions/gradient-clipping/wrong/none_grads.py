# expect: failed
# why: assumes every parameter has a gradient (p.grad for every p): a frozen parameter, or one the
#   loss did not reach, has .grad None, and the function crashes on it
# caught-by: test_parameter_without_grad, test_params_without_grad, test_no_gradients_at_all
import torch


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return total_norm
