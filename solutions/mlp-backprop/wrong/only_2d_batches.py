# expect: failed
# why: written for (N, d_in) batches: with more leading dims, (B, T, d_in), the batched products
#   give one weight gradient per sequence and the bias gradient sums over the first dim only, where
#   every row of every leading dim must be summed (flatten them first)
# caught-by: test_backward_random_shapes, test_zero_rows_with_zero_biases, test_inputs_unchanged
import torch


def mlp_forward(x, W1, b1, W2, b2):
    return torch.relu(x @ W1.T + b1) @ W2.T + b2


def mlp_backward(x, W1, b1, W2, b2, grad_out):
    single = x.dim() == 1
    if single:  # a lone vector is a batch of one row
        x, grad_out = x.unsqueeze(0), grad_out.unsqueeze(0)
    H = x @ W1.T + b1
    A = torch.relu(H)
    grad_W2 = grad_out.transpose(-2, -1) @ A  # the mistake: batched over the leading dims, not summed
    grad_b2 = grad_out.sum(dim=0)
    grad_H = (grad_out @ W2) * (H > 0)
    grad_W1 = grad_H.transpose(-2, -1) @ x
    grad_b1 = grad_H.sum(dim=0)
    grad_x = grad_H @ W1
    return (grad_x.squeeze(0) if single else grad_x), grad_W1, grad_b1, grad_W2, grad_b2
