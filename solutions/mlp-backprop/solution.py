"""Backpropagation through an MLP by hand: the reference solution."""

import torch


def mlp_forward(
    x: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """relu(x @ W1.T + b1) @ W2.T + b2, with weights in nn.Linear's (out_features, in_features) layout."""
    h = x @ W1.T + b1  # (..., d_hidden): the pre-activation
    a = torch.relu(h)  # (..., d_hidden): the activation
    return a @ W2.T + b2  # (..., d_out)


def mlp_backward(
    x: torch.Tensor,
    W1: torch.Tensor,
    b1: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
    grad_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, grad_W1, grad_b1, grad_W2, grad_b2) for the upstream gradient grad_out."""
    d_in, d_out = W1.shape[1], W2.shape[0]
    # every leading dim is one more set of examples: flatten them into one batch of rows
    X = x.reshape(-1, d_in)  # (N, d_in)
    G = grad_out.reshape(-1, d_out)  # (N, d_out)

    # the forward again, keeping what the backward needs
    H = X @ W1.T + b1  # (N, d_hidden)
    A = torch.relu(H)  # (N, d_hidden)

    # second layer: out = A @ W2.T + b2
    grad_W2 = G.T @ A  # (d_out, N) @ (N, d_hidden) -> (d_out, d_hidden), summed over the rows
    grad_b2 = G.sum(dim=0)  # b2 is added to every row: its gradient sums over them
    grad_A = G @ W2  # (N, d_out) @ (d_out, d_hidden) -> (N, d_hidden)

    # ReLU: the gradient passes where the pre-activation is > 0, and stops where it is <= 0
    # (relu'(0) = 0, as torch.relu's autograd has it)
    grad_H = grad_A * (H > 0).to(grad_A.dtype)  # (N, d_hidden)

    # first layer: h = X @ W1.T + b1
    grad_W1 = grad_H.T @ X  # (d_hidden, N) @ (N, d_in) -> (d_hidden, d_in)
    grad_b1 = grad_H.sum(dim=0)  # (d_hidden,)
    grad_X = grad_H @ W1  # (N, d_hidden) @ (d_hidden, d_in) -> (N, d_in)

    return grad_X.reshape(x.shape), grad_W1, grad_b1, grad_W2, grad_b2
