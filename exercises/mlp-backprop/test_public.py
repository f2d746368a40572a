"""Public tests: the worked example of the lesson, the shapes, and a comparison with autograd.

Run them with `grader test mlp-backprop mlp.py`.
"""

import torch
import torch.nn.functional as F  # on the test's side only: mlp.py must not use autograd

from grader.testing import assert_close, expect

NAMES = ("grad_x", "grad_W1", "grad_b1", "grad_W2", "grad_b2")
BIAS_MEAN = "averaged over the batch? The bias gradients are summed over every row"
W_TRANSPOSED = (
    "a weight gradient transposed? With nn.Linear's (out_features, in_features) layout, the gradient "
    "of W is grad_y.T @ (the layer's input)"
)
ACTIVATION_VALUE = "multiplied by the activation a instead of the 0/1 mask (h > 0)?"
W2_FROM_H = "grad_W2 from the pre-activation h? The second layer received a = relu(h)"
GRAD_X_IS_GRAD_H = "returned the gradient of h as grad_x? It goes back through W1 too: grad_h @ W1"


def worked_example():
    """The lesson's example: 2 rows, d_in = 2, d_hidden = 3, d_out = 1."""
    x = torch.tensor([[1.0, 2.0], [-1.0, 1.0]])
    W1 = torch.tensor([[1.0, -1.0], [2.0, 0.0], [0.0, 1.0]])
    b1 = torch.tensor([0.0, -1.0, 1.0])
    W2 = torch.tensor([[1.0, 2.0, -1.0]])
    b2 = torch.tensor([0.5])
    return x, W1, b1, W2, b2


def five_tensors(got):
    expect(
        isinstance(got, (tuple, list)) and len(got) == 5 and all(isinstance(t, torch.Tensor) for t in got),
        "mlp_backward must return a tuple of five tensors: (grad_x, grad_W1, grad_b1, grad_W2, grad_b2)",
    )


def test_forward_worked_example(submission):
    """h = [[-1, 1, 3], [-2, -3, 2]], a = relu(h) = [[0, 1, 3], [0, 0, 2]], out = [[-0.5], [-1.5]]."""
    assert_close(
        submission.mlp_forward(*worked_example()),
        torch.tensor([[-0.5], [-1.5]]),
        misconceptions={
            "no ReLU? out = relu(h) @ W2.T + b2, with relu(h) = max(h, 0)": torch.tensor([[-1.5], [-9.5]]),
            "ReLU applied to the output too? Only the hidden layer has one": torch.tensor([[0.0], [0.0]]),
        },
    )


def test_backward_worked_example(submission):
    """grad_out = [[1], [2]]: the five gradients of the lesson's worked example."""
    g = torch.tensor([[1.0], [2.0]])
    got = submission.mlp_backward(*worked_example(), g)
    five_tensors(got)
    # from the output back to the input, in the order the backward pass computes them
    expected = {
        "grad_W2": (
            torch.tensor([[0.0, 1.0, 7.0]]),
            {W2_FROM_H: torch.tensor([[-5.0, -5.0, 7.0]]), W_TRANSPOSED: torch.tensor([[0.0], [1.0], [7.0]])},
        ),
        "grad_b2": (torch.tensor([3.0]), {BIAS_MEAN: torch.tensor([1.5])}),
        "grad_W1": (
            torch.tensor([[0.0, 0.0], [2.0, 4.0], [1.0, -4.0]]),
            {
                ACTIVATION_VALUE: torch.tensor([[0.0, 0.0], [2.0, 4.0], [1.0, -10.0]]),
                W_TRANSPOSED: torch.tensor([[0.0, 2.0, 1.0], [0.0, 4.0, -4.0]]),
            },
        ),
        "grad_b1": (
            torch.tensor([0.0, 2.0, -3.0]),
            {BIAS_MEAN: torch.tensor([0.0, 1.0, -1.5]), ACTIVATION_VALUE: torch.tensor([0.0, 2.0, -7.0])},
        ),
        "grad_x": (
            torch.tensor([[4.0, -1.0], [0.0, -2.0]]),
            {
                GRAD_X_IS_GRAD_H: torch.tensor([[0.0, 2.0, -1.0], [0.0, 0.0, -2.0]]),
                ACTIVATION_VALUE: torch.tensor([[4.0, -3.0], [0.0, -4.0]]),
            },
        ),
    }
    by_name = dict(zip(NAMES, got, strict=True))
    for name, (want, mistakes) in expected.items():
        assert_close(by_name[name], want, what=name, misconceptions=mistakes)


def test_gradient_shapes(submission):
    """Widths d_in 5, d_hidden 7, d_out 3 on 4 rows: each gradient has the shape of its tensor."""
    gen = torch.Generator().manual_seed(0)
    x, W1, b1 = (
        torch.randn(4, 5, generator=gen),
        torch.randn(7, 5, generator=gen),
        torch.randn(7, generator=gen),
    )
    W2, b2, g = (
        torch.randn(3, 7, generator=gen),
        torch.randn(3, generator=gen),
        torch.randn(4, 3, generator=gen),
    )
    out = submission.mlp_forward(x, W1, b1, W2, b2)
    expect(
        isinstance(out, torch.Tensor) and tuple(out.shape) == (4, 3),
        "mlp_forward must return a tensor of shape (4, 3) = (rows, d_out)",
        detail=f"got {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}",
    )
    got = submission.mlp_backward(x, W1, b1, W2, b2, g)
    five_tensors(got)
    for name, tensor, want in zip(NAMES, got, (x, W1, b1, W2, b2), strict=True):
        expect(
            tuple(tensor.shape) == tuple(want.shape),
            f"{name} must have shape {tuple(want.shape)}, the shape of the tensor it belongs to",
            detail=f"got {tuple(tensor.shape)}",
            hint="the gradient of a tensor has that tensor's shape: check the transposes and the sums",
        )


def autograd_gradients(x, W1, b1, W2, b2, g):
    """The output and the five gradients as PyTorch's autograd computes them: the oracle."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, W1, b1, W2, b2)]
    out = F.linear(torch.relu(F.linear(leaves[0], leaves[1], leaves[2])), leaves[3], leaves[4])
    return out.detach(), torch.autograd.grad(out, leaves, g)


def test_matches_autograd_float64(submission):
    """A random float64 batch (16 rows, d_in 6, d_hidden 10, d_out 4) against torch.autograd.grad."""
    gen = torch.Generator().manual_seed(1234)
    f64 = {"generator": gen, "dtype": torch.float64}
    x, g = torch.randn(16, 6, **f64), torch.randn(16, 4, **f64)
    W1, b1 = torch.randn(10, 6, **f64) / 6**0.5, torch.randn(10, **f64) * 0.5
    W2, b2 = torch.randn(4, 10, **f64) / 10**0.5, torch.randn(4, **f64)
    out, grads = autograd_gradients(x, W1, b1, W2, b2, g)
    assert_close(submission.mlp_forward(x, W1, b1, W2, b2), out, what="mlp_forward", rtol=1e-10, atol=1e-12)
    got = submission.mlp_backward(x, W1, b1, W2, b2, g)
    five_tensors(got)
    for name, tensor, want in zip(NAMES, got, grads, strict=True):
        assert_close(tensor, want, what=name, rtol=1e-10, atol=1e-12)
