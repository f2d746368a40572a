# expect: rejected
# why: lets torch.func.vjp compute the vector-Jacobian product of the forward, which is autograd
#   under another name
import torch


def mlp_forward(x, W1, b1, W2, b2):
    return torch.relu(x @ W1.T + b1) @ W2.T + b2


def mlp_backward(x, W1, b1, W2, b2, grad_out):
    _, pull_back = torch.func.vjp(mlp_forward, x, W1, b1, W2, b2)
    return pull_back(grad_out)
