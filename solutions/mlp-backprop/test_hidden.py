"""Hidden tests for mlp-backprop: the forward and the five gradients against PyTorch's autograd on
random shapes and leading dims, in float32 and float64, square layers, pre-activations exactly at
zero, dead units, dtypes, and inputs left unchanged."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: the submission may not use autograd

from grader.testing import assert_close, call_unchanged, expect, shrink, tolerance

NAMES = ("grad_x", "grad_W1", "grad_b1", "grad_W2", "grad_b2")
# the order a backward pass computes them in, from the output back to the input: the first wrong
# one is the one reported
CHECK_ORDER = (3, 4, 1, 2, 0)

# one wording per mistake, the same as in the public tests where they name it too
BIAS_MEAN = "averaged over the batch? The bias gradients are summed over every row"
W_TRANSPOSED = (
    "a weight gradient transposed? With nn.Linear's (out_features, in_features) layout, the gradient "
    "of W is grad_y.T @ (the layer's input)"
)
ACTIVATION_VALUE = "multiplied by the activation a instead of the 0/1 mask (h > 0)?"
W2_FROM_H = "grad_W2 from the pre-activation h? The second layer received a = relu(h)"
GRAD_X_IS_GRAD_H = "returned the gradient of h as grad_x? It goes back through W1 too: grad_h @ W1"
NO_MASK = "the ReLU mask forgotten? grad_h = grad_a * (h > 0): no gradient flows where h <= 0"
RELU_ZERO_ONE = (
    "relu'(0) taken as 1 (h >= 0, as clamp's autograd has it)? The gradient stops where h <= 0, at h == 0 "
    "exactly too, as torch.relu's autograd computes it"
)
RELU_ZERO_HALF = (
    "relu'(0) taken as 1/2 (as torch.maximum's autograd has it)? The gradient stops where h <= 0, at "
    "h == 0 exactly too, as torch.relu's autograd computes it"
)
LEADING = (
    "not summed over every leading dim? The weight and bias gradients sum over all the rows of all the "
    "leading dims: flatten them (x.reshape(-1, d_in)) first"
)
FLOAT32_DETOUR = "computed in float32? float64 inputs keep float64's precision: compute in the inputs' dtype"
TAKE_ZERO_HINT = (
    "some pre-activations here are exactly 0: ReLU's derivative there is 0, as torch.relu's autograd "
    "computes it (mask with h > 0, not h >= 0)"
)


# ---------------------------------------------------------------------------- oracles


def autograd_gradients(x, W1, b1, W2, b2, g):
    """The output and (grad_x, grad_W1, grad_b1, grad_W2, grad_b2) from PyTorch's autograd, in the
    inputs' dtype: the oracle."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, W1, b1, W2, b2)]
    out = F.linear(torch.relu(F.linear(leaves[0], leaves[1], leaves[2])), leaves[3], leaves[4])
    return out.detach(), tuple(torch.autograd.grad(out, leaves, g))


def by_formula(
    x,
    W1,
    b1,
    W2,
    b2,
    g,
    *,
    relu_at_zero=0.0,
    mask="relu",
    w2_input="a",
    bias="sum",
    transpose=False,
    grad_x="W1",
    leading="all",
):
    """The five gradients by hand, in float64, returned in x's dtype, with one mistake switched on
    by the keyword arguments (the defaults give the right answer)."""
    dtype = x.dtype
    x, W1, b1, W2, b2, g = (t.double() for t in (x, W1, b1, W2, b2, g))
    d_in, d_out = W1.shape[1], W2.shape[0]
    if leading == "all":
        X, G = x.reshape(-1, d_in), g.reshape(-1, d_out)
    else:  # written for (N, d) inputs: batched products over the other leading dims, never summed
        X, G = x, g
    H = X @ W1.T + b1
    A = torch.relu(H)

    def weight_grad(gy, inp):
        w = gy.transpose(-2, -1) @ inp
        return w.transpose(-2, -1) if transpose else w

    def bias_grad(gy):
        return gy.mean(dim=0) if bias == "mean" else gy.sum(dim=0)

    gW2 = weight_grad(G, A if w2_input == "a" else H)
    gb2 = bias_grad(G)
    gA = G @ W2
    if mask == "relu":
        derivative = (H > 0).double() + relu_at_zero * (H == 0).double()
    elif mask == "value":
        derivative = A
    else:
        derivative = torch.ones_like(H)
    gH = gA * derivative
    gW1 = weight_grad(gH, X)
    gb1 = bias_grad(gH)
    if grad_x == "W1":
        gX = (gH @ W1).reshape(x.shape)
    else:
        gX = gH.reshape(*x.shape[:-1], -1)
    return tuple(t.to(dtype) for t in (gX, gW1, gb1, gW2, gb2))


def mistakes(x, W1, b1, W2, b2, g):
    """For each of the five gradients, the outputs of the likely mistakes, to name the one made."""
    made = {
        RELU_ZERO_ONE: by_formula(x, W1, b1, W2, b2, g, relu_at_zero=1.0),
        RELU_ZERO_HALF: by_formula(x, W1, b1, W2, b2, g, relu_at_zero=0.5),
        ACTIVATION_VALUE: by_formula(x, W1, b1, W2, b2, g, mask="value"),
        NO_MASK: by_formula(x, W1, b1, W2, b2, g, mask="none"),
        W2_FROM_H: by_formula(x, W1, b1, W2, b2, g, w2_input="h"),
        BIAS_MEAN: by_formula(x, W1, b1, W2, b2, g, bias="mean"),
        W_TRANSPOSED: by_formula(x, W1, b1, W2, b2, g, transpose=True),
        GRAD_X_IS_GRAD_H: by_formula(x, W1, b1, W2, b2, g, grad_x="h"),
    }
    if x.dim() >= 3:
        made[LEADING] = by_formula(x, W1, b1, W2, b2, g, leading="first")
    if x.dtype == torch.float64:
        made[FLOAT32_DETOUR] = tuple(
            t.double() for t in by_formula(*(t.float() for t in (x, W1, b1, W2, b2, g)))
        )
    return [{label: grads[i] for label, grads in made.items()} for i in range(5)]


def assert_gradients(got, expected, args, *, hint="", **tol):
    """`got` is a tuple of five tensors equal to `expected`, checked from grad_W2 back to grad_x, each
    with the mistakes that would explain it."""
    expect(
        isinstance(got, (tuple, list)) and len(got) == 5 and all(isinstance(t, torch.Tensor) for t in got),
        "mlp_backward must return a tuple of five tensors: (grad_x, grad_W1, grad_b1, grad_W2, grad_b2)",
    )
    named = mistakes(*args)
    for i in CHECK_ORDER:
        assert_close(got[i], expected[i], what=NAMES[i], hint=hint, misconceptions=named[i], **tol)


# ---------------------------------------------------------------------------- inputs


def randn(rng, *shape, scale=1.0, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape) * scale).to(dtype)


def on_grid(t, step):
    """t rounded to a multiple of `step` (a power of two)."""
    return torch.round(t / step) * step


def mlp_inputs(rng, lead, d_in, d_hidden, d_out, dtype=torch.float32):
    """x, W1, b1, W2, b2, grad_out at a scale where h ~ N(0, 1): about half the units on.

    x, W1 and b1 lie on grids of 1/16, 1/256 and 1/4096, so every product and sum in h is a
    multiple of 1/4096 below 2^9 and exact in float32, whatever the order of the computation: the
    submission's h is bitwise the oracle's, and no unit near 0 can fall on the other side of the
    ReLU in one of them only (which would change a whole row of the gradients).
    """
    x = on_grid(randn(rng, *lead, d_in, dtype=dtype), 2.0**-4)
    W1 = on_grid(randn(rng, d_hidden, d_in, scale=1 / np.sqrt(d_in), dtype=dtype), 2.0**-8)
    b1 = on_grid(randn(rng, d_hidden, scale=0.3, dtype=dtype), 2.0**-12)
    W2 = randn(rng, d_out, d_hidden, scale=1 / np.sqrt(d_hidden), dtype=dtype)
    b2 = randn(rng, d_out, scale=0.3, dtype=dtype)
    g = randn(rng, *lead, d_out, dtype=dtype)
    return x, W1, b1, W2, b2, g


# ---------------------------------------------------------------------------- forward

FORWARD_SHAPES = [
    pytest.param((), 6, 10, 3, id="a-single-vector"),
    pytest.param((1,), 6, 10, 3, id="one-row"),
    pytest.param((12,), 8, 16, 4, id="rows"),
    pytest.param((2, 5), 8, 16, 4, id="batch-tokens"),
    pytest.param((2, 3, 4), 5, 7, 9, id="three-leading-dims"),
    pytest.param((6,), 8, 8, 8, id="square-layers"),
]


@pytest.mark.parametrize("lead, d_in, d_hidden, d_out", FORWARD_SHAPES)
def test_forward(submission, rng, lead, d_in, d_hidden, d_out):
    """mlp_forward on random inputs of any leading dims, against F.linear and torch.relu."""
    x, W1, b1, W2, b2, _ = mlp_inputs(rng, lead, d_in, d_hidden, d_out)
    exact = F.linear(torch.relu(F.linear(x.double(), W1.double(), b1.double())), W2.double(), b2.double())
    named = {
        "no ReLU? out = relu(h) @ W2.T + b2, with relu(h) = max(h, 0)": F.linear(F.linear(x, W1, b1), W2, b2)
    }
    if d_in == d_hidden == d_out:
        named["weights used as (in, out)? nn.Linear's layout is (out_features, in_features): x @ W.T"] = (
            torch.relu(x @ W1 + b1) @ W2 + b2
        )
    assert_close(
        submission.mlp_forward(x, W1, b1, W2, b2),
        exact.float(),
        what="mlp_forward",
        **tolerance(torch.float32),
        misconceptions=named,
    )


# ---------------------------------------------------------------------------- backward

LEADS = [
    pytest.param((), id="a-single-vector"),
    pytest.param(("rows",), id="rows"),
    pytest.param(("batch", "rows"), id="batch-tokens"),
    pytest.param(("batch", "heads", "rows"), id="three-leading-dims"),
]


@pytest.mark.parametrize("lead", LEADS)
def test_backward_random_shapes(submission, seed, lead):
    """The five gradients in float32 against torch.autograd.grad, for any number of leading dims."""
    sizes = {"batch": 3, "heads": 2, "rows": 10, "d_in": 12, "d_hidden": 20, "d_out": 6}

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        shape = tuple(sizes[name] for name in lead)
        args = mlp_inputs(rng, shape, sizes["d_in"], sizes["d_hidden"], sizes["d_out"])
        _, expected = autograd_gradients(*args)
        got = submission.mlp_backward(*args)
        assert_gradients(got, expected, args, **tolerance(torch.float32))

    used = {name: sizes[name] for name in (*lead, "d_in", "d_hidden", "d_out")}
    shrink(check, used, seed=seed, minimum={name: 1 for name in used})


def test_one_row(submission, rng):
    """A batch of one row, (1, d_in): the gradients of that row alone."""
    args = mlp_inputs(rng, (1,), 9, 13, 5)
    _, expected = autograd_gradients(*args)
    assert_gradients(submission.mlp_backward(*args), expected, args, **tolerance(torch.float32))


@pytest.mark.parametrize(
    "lead",
    [pytest.param((7,), id="rows"), pytest.param((2, 4), id="batch-tokens")],
)
def test_square_layers(submission, rng, lead):
    """d_in = d_hidden = d_out = 8 (float64): a transposed gradient has the right shape but wrong values."""
    args = mlp_inputs(rng, lead, 8, 8, 8, dtype=torch.float64)
    _, expected = autograd_gradients(*args)
    assert_gradients(submission.mlp_backward(*args), expected, args, rtol=1e-10, atol=1e-12)


def test_many_rows(submission, rng):
    """A batch of 256 rows: the weight and bias gradients sum over all of them."""
    args = mlp_inputs(rng, (256,), 16, 32, 8)
    _, expected = autograd_gradients(*args)
    assert_gradients(submission.mlp_backward(*args), expected, args, **tolerance(torch.float32))


@pytest.mark.parametrize(
    "lead",
    [
        pytest.param((11,), id="rows"),
        pytest.param((3, 5), id="batch-tokens"),
        pytest.param((), id="a-single-vector"),
    ],
)
def test_float64_precision(submission, rng, lead):
    """float64 inputs give float64 gradients, to float64's precision (against autograd in float64)."""
    args = mlp_inputs(rng, lead, 10, 14, 6, dtype=torch.float64)
    x, W1, b1, W2, b2, g = args
    x = x * (1 + 1e-3 * randn(rng, *x.shape, dtype=torch.float64))  # values float32 cannot hold
    args = (x, W1, b1, W2, b2, g)
    _, expected = autograd_gradients(*args)
    got = submission.mlp_backward(*args)
    expect(
        isinstance(got, (tuple, list))
        and all(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in got),
        "float64 inputs must give float64 gradients: all five, in the inputs' dtype",
    )
    # float64 arithmetic is off by about 1e-15 here, a detour through float32 by about 1e-7
    assert_gradients(got, expected, args, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]
)
def test_output_dtypes(submission, rng, dtype):
    """The output and every gradient have the inputs' dtype."""
    args = mlp_inputs(rng, (4,), 5, 6, 3, dtype=dtype)
    name = str(dtype).removeprefix("torch.")
    out = submission.mlp_forward(*args[:5])
    expect(
        isinstance(out, torch.Tensor) and out.dtype == dtype,
        f"mlp_forward must return a {name} tensor for {name} inputs",
    )
    got = submission.mlp_backward(*args)
    expect(
        isinstance(got, (tuple, list)) and len(got) == 5,
        "mlp_backward must return a tuple of five tensors: (grad_x, grad_W1, grad_b1, grad_W2, grad_b2)",
    )
    for grad_name, tensor in zip(NAMES, got, strict=True):
        expect(
            isinstance(tensor, torch.Tensor) and tensor.dtype == dtype,
            f"{grad_name} must be a {name} tensor for {name} inputs",
            hint="compute in the inputs' dtype: no .float() or .double() on the way",
        )


# ---------------------------------------------------------------------------- relu'(0)


def small_integers(rng, *shape, low=-2, high=2, dtype=torch.float32):
    return torch.from_numpy(rng.integers(low, high + 1, size=shape)).to(dtype)


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]
)
def test_relu_derivative_at_zero(submission, rng, dtype):
    """Small-integer inputs, where many pre-activations are exactly 0: the gradient stops there.

    Every product and sum of small integers is exact in float32, whatever the order, so the
    submission computes exactly the same h as the oracle, zeros included. The zeros forced below
    have positive upstream gradients (g > 0, W2's column > 0), so that relu'(0) = 1 shows.
    """
    n, d_in, d_hidden, d_out = 16, 4, 10, 3
    x = small_integers(rng, n, d_in, dtype=dtype)
    W1 = small_integers(rng, d_hidden, d_in, dtype=dtype)
    b1 = small_integers(rng, d_hidden, dtype=dtype)
    W2 = small_integers(rng, d_out, d_hidden, dtype=dtype)
    b2 = small_integers(rng, d_out, dtype=dtype)
    g = small_integers(rng, n, d_out, dtype=dtype)
    for row, unit in ((0, 0), (5, 3), (9, 7)):  # h[row, unit] = 0 for certain
        x[row, 0] = 1.0 if W1[unit, 0] == 0 else x[row, 0]
        b1[unit] = -(x[row] @ W1[unit])
        W2[:, unit] = small_integers(rng, d_out, low=1, high=2, dtype=dtype)
        g[row] = small_integers(rng, d_out, low=1, high=2, dtype=dtype)
    args = (x, W1, b1, W2, b2, g)
    h = x @ W1.T + b1
    assert int((h == 0).sum()) >= 3 and h.abs().max() < 2**20  # exact in float32
    _, expected = autograd_gradients(*args)
    assert_gradients(submission.mlp_backward(*args), expected, args, hint=TAKE_ZERO_HINT)


def test_zero_rows_with_zero_biases(submission, rng):
    """All-zero input rows (padding) with zero first-layer biases: every unit sits exactly at h = 0 there."""
    x, W1, b1, W2, b2, g = mlp_inputs(rng, (3, 6), 8, 12, 5)
    x[0, 1] = 0.0
    x[2, 4] = 0.0
    x[1, :] = 0.0  # a whole padded sequence
    b1 = torch.zeros_like(b1)
    args = (x, W1, b1, W2, b2, g)
    _, expected = autograd_gradients(*args)
    got = submission.mlp_backward(*args)
    assert_gradients(got, expected, args, hint=TAKE_ZERO_HINT, **tolerance(torch.float32))


def test_dead_units(submission, rng):
    """Units whose pre-activation is negative for every row get exactly zero weight and bias gradients."""
    x, W1, b1, W2, b2, g = mlp_inputs(rng, (20,), 6, 10, 4)
    dead = [1, 4, 5, 9]
    b1[dead] = -50.0  # far below anything x @ W1.T reaches here
    args = (x, W1, b1, W2, b2, g)
    _, expected = autograd_gradients(*args)
    got = submission.mlp_backward(*args)
    assert_gradients(got, expected, args, **tolerance(torch.float32))
    expect(
        bool((got[1][dead] == 0).all()) and bool((got[2][dead] == 0).all()),
        "the units that are off for every row must get exactly zero gradient for their weights and bias",
        hint="no gradient flows through a ReLU where h <= 0: grad_h = grad_a * (h > 0)",
    )


# ---------------------------------------------------------------------------- inputs left alone


def test_inputs_unchanged(submission, rng):
    """mlp_backward and mlp_forward leave x, the weights, the biases and grad_out as they were."""
    args = mlp_inputs(rng, (2, 5), 6, 9, 4)
    hint = (
        "compute new tensors (grad_a * mask, x.reshape(...)), never in place on an input: no *=, +=, "
        "masked_fill_, relu_ or other trailing-underscore methods on x, the weights, the biases or grad_out"
    )
    got = call_unchanged(
        submission.mlp_backward,
        *args,
        names=("x", "W1", "b1", "W2", "b2", "grad_out"),
        what="mlp_backward",
        hint=hint,
    )
    _, expected = autograd_gradients(*args)
    assert_gradients(got, expected, args, **tolerance(torch.float32))
    call_unchanged(
        submission.mlp_forward, *args[:5], names=("x", "W1", "b1", "W2", "b2"), what="mlp_forward", hint=hint
    )
