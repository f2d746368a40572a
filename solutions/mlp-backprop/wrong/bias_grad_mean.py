# expect: failed
# why: the bias gradients are averaged over the batch (mean) instead of summed: b is used by every
#   row, so each row's contribution adds up; any 1/N of the loss is already inside grad_out
# caught-by: test_backward_worked_example, test_backward_random_shapes, test_many_rows
import torch


def mlp_forward(x, W1, b1, W2, b2):
    return torch.relu(x @ W1.T + b1) @ W2.T + b2


def mlp_backward(x, W1, b1, W2, b2, grad_out):
    X = x.reshape(-1, W1.shape[1])
    G = grad_out.reshape(-1, W2.shape[0])
    H = X @ W1.T + b1
    A = torch.relu(H)
    grad_W2 = G.T @ A
    grad_b2 = G.mean(dim=0)  # the mistake: a mean over the rows
    grad_H = (G @ W2) * (H > 0)
    grad_W1 = grad_H.T @ X
    grad_b1 = grad_H.mean(dim=0)
    return (grad_H @ W1).reshape(x.shape), grad_W1, grad_b1, grad_W2, grad_b2
