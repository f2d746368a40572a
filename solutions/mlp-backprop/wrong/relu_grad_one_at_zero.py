# expect: failed
# why: ReLU's derivative taken as 1 at h = 0 (the mask is h >= 0, as clamp(min=0)'s autograd has
#   it) where torch.relu's autograd, the convention asked for, gives 0; random float inputs never
#   hit 0 exactly, so only pre-activations that are exactly zero show it
# caught-by: test_relu_derivative_at_zero, test_zero_rows_with_zero_biases
import torch


def mlp_forward(x, W1, b1, W2, b2):
    return torch.relu(x @ W1.T + b1) @ W2.T + b2


def mlp_backward(x, W1, b1, W2, b2, grad_out):
    X = x.reshape(-1, W1.shape[1])
    G = grad_out.reshape(-1, W2.shape[0])
    H = X @ W1.T + b1
    A = torch.relu(H)
    grad_W2 = G.T @ A
    grad_b2 = G.sum(dim=0)
    grad_H = (G @ W2) * (H >= 0)  # the mistake: the gradient passes at h == 0 too
    grad_W1 = grad_H.T @ X
    grad_b1 = grad_H.sum(dim=0)
    return (grad_H @ W1).reshape(x.shape), grad_W1, grad_b1, grad_W2, grad_b2
