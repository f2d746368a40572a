# expect: failed
# why: the ReLU's backward multiplies the upstream gradient by the activation a = relu(h) instead
#   of the 0/1 mask (h > 0): right where a unit is off, but every active unit's gradient is scaled
#   by how strongly it fired (that is the derivative of a^2 / 2, not of relu)
# caught-by: test_backward_worked_example, test_backward_random_shapes, test_matches_autograd_float64
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
    grad_H = (G @ W2) * A  # the mistake: the activation's value, not its derivative
    grad_W1 = grad_H.T @ X
    grad_b1 = grad_H.sum(dim=0)
    return (grad_H @ W1).reshape(x.shape), grad_W1, grad_b1, grad_W2, grad_b2
