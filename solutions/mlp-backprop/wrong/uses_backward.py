# expect: rejected
# why: lets autograd do the backward pass (out.backward(grad_out) and the .grad of copies of the
#   inputs), which the exercise forbids
import torch


def mlp_forward(x, W1, b1, W2, b2):
    return torch.relu(x @ W1.T + b1) @ W2.T + b2


def mlp_backward(x, W1, b1, W2, b2, grad_out):
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, W1, b1, W2, b2)]
    out = mlp_forward(*leaves)
    out.backward(grad_out)
    return tuple(t.grad for t in leaves)
