# expect: failed
# why: the gradient of the input is taken to be the gradient of the pre-activation h: it must also
#   go back through the first layer's weights, grad_x = grad_h @ W1
# caught-by: test_backward_worked_example, test_gradient_shapes, test_square_layers
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
    grad_H = (G @ W2) * (H > 0)
    grad_W1 = grad_H.T @ X
    grad_b1 = grad_H.sum(dim=0)
    grad_x = grad_H  # the mistake: W1 left out of the chain
    return grad_x.reshape(*x.shape[:-1], -1), grad_W1, grad_b1, grad_W2, grad_b2
