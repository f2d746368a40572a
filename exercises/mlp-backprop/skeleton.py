"""Backpropagation through an MLP by hand: the forward and the backward of a two-layer ReLU MLP.

Fill in the two functions below. Read README.md first: it explains every convention used here.
Autograd is not allowed in this file (no .backward(), torch.autograd, torch.func): the backward
pass is yours to write, with matrix products.
"""

import torch


def mlp_forward(
    x: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """out = relu(x @ W1.T + b1) @ W2.T + b2.

    The weights use torch.nn.Linear's layout, (out_features, in_features), so that this equals
    F.linear(torch.relu(F.linear(x, W1, b1)), W2, b2):
        x:  (..., d_in)           any number of leading dims, also none (a single vector)
        W1: (d_hidden, d_in)      b1: (d_hidden,)
        W2: (d_out, d_hidden)     b2: (d_out,)
        returns out: (..., d_out), in the dtype of the inputs (float32 or float64, all the same).
    """
    raise NotImplementedError("mlp_forward: two linear layers with a ReLU between them")


def mlp_backward(
    x: torch.Tensor,
    W1: torch.Tensor,
    b1: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
    grad_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of a loss L with respect to x, W1, b1, W2 and b2, given grad_out = dL/d out.

    grad_out has the shape of mlp_forward's output, (..., d_out), with x's leading dims.

    Returns the tuple (grad_x, grad_W1, grad_b1, grad_W2, grad_b2), in this order, each of the
    shape of the tensor it belongs to (grad_x: x's shape, grad_W1: (d_hidden, d_in), ...) and of
    the inputs' dtype. The weight and bias gradients are SUMMED over every row of every leading
    dim of x (never averaged: any 1/N of the loss is already inside grad_out).

    ReLU's derivative is 1 where the pre-activation h = x @ W1.T + b1 is > 0, and 0 where h <= 0:
    0 at h == 0 exactly, as PyTorch's autograd computes it for torch.relu.

    Leave every input as it was (no in-place operations on them). No autograd: compute every
    gradient with tensor operations (matrix products, a mask, sums).
    """
    raise NotImplementedError("mlp_backward: the chain rule from grad_out back to x, layer by layer")
