# expect: failed
# why: the weight gradients use the formula of the (in, out) layout, u.T @ grad_y, for weights
#   stored as nn.Linear's (out_features, in_features): every weight gradient comes out transposed
# caught-by: test_backward_worked_example, test_gradient_shapes, test_square_layers
import torch


def mlp_forward(x, W1, b1, W2, b2):
    return torch.relu(x @ W1.T + b1) @ W2.T + b2


def mlp_backward(x, W1, b1, W2, b2, grad_out):
    X = x.reshape(-1, W1.shape[1])
    G = grad_out.reshape(-1, W2.shape[0])
    H = X @ W1.T + b1
    A = torch.relu(H)
    grad_W2 = A.T @ G  # the mistake: (d_hidden, d_out), the transpose of W2's shape
    grad_b2 = G.sum(dim=0)
    grad_H = (G @ W2) * (H > 0)
    grad_W1 = X.T @ grad_H  # (d_in, d_hidden)
    grad_b1 = grad_H.sum(dim=0)
    return (grad_H @ W1).reshape(x.shape), grad_W1, grad_b1, grad_W2, grad_b2
