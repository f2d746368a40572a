"""Public tests: the worked examples of the lesson, and a few small cases you can check by hand.

Run them with `grader test activations activations.py`.
"""

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_gradients_close, expect

X = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])

GELU_TANH_FOR_EXACT = (
    "used the tanh approximation in gelu? gelu is the exact 0.5 * x * (1 + erf(x / sqrt(2))); the "
    "tanh formula is gelu_tanh"
)
EXACT_FOR_TANH = (
    "used erf in gelu_tanh? gelu_tanh is the tanh approximation: "
    "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))"
)
SIGMOID_APPROX = (
    "computed x * sigmoid(1.702 x), the sigmoid approximation of GELU? It is off by up to 0.02: use "
    "the formula the lesson gives for this function"
)
TANH_BRACKET = (
    "sqrt(2 / pi) multiplied only x? It multiplies the whole bracket: "
    "tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))"
)
NO_CUBE = "the cubic term is missing? The bracket is x + 0.044715 * x^3"
ERF_NO_SQRT2 = "erf(x) instead of erf(x / sqrt(2))? Phi(x) = 0.5 * (1 + erf(x / sqrt(2)))"
MISSING_HALF = "forgot the factor 0.5? GELU is 0.5 * x * (1 + ...)"
SIGMOID_ONLY = "returned sigmoid(x)? SiLU multiplies it by x: x * sigmoid(x)"
GATE_UP_SWAPPED = "SiLU applied to the up projection? It goes on the gate: silu(x @ w_gate.T) * (x @ w_up.T)"
SILU_ON_PRODUCT = "SiLU applied after the product? Only the gate goes through SiLU: silu(gate) * up"
NO_ACTIVATION = "no activation on the gate? SwiGLU is silu(gate) * up"
OVERFLOW_HINT = (
    "non-finite values for large inputs: exp(x) overflows to inf past x = 88.7 (float32, bfloat16) or "
    "11.09 (float16), and inf / inf or 0 * inf is NaN; torch.sigmoid, torch.tanh and torch.erf never "
    "overflow, and for half inputs computing in float32 keeps x^3 finite"
)
HALF_COMPUTE = (
    "computed in half precision? For float16 and bfloat16 inputs compute in float32 and cast back once, "
    "at the end: 1 + erf(...) and 1 + tanh(...) cancel for negative x, and half precision keeps too few "
    "digits for that"
)


def test_gelu_worked_example(submission):
    """gelu([-2, -1, 0, 1, 2]) = x * Phi(x) = [-0.0455, -0.15866, 0, 0.84134, 1.9545]."""
    assert_close(
        submission.gelu(X),
        torch.tensor([-0.0455003, -0.1586553, 0.0, 0.8413447, 1.9544997]),
        misconceptions={
            GELU_TANH_FOR_EXACT: torch.tensor([-0.0454023, -0.1588080, 0.0, 0.8411920, 1.9545977]),
            SIGMOID_APPROX: torch.tensor([-0.0643414, -0.1542042, 0.0, 0.8457958, 1.9356586]),
            ERF_NO_SQRT2: 0.5 * X * (1 + torch.erf(X)),
            MISSING_HALF: X * (1 + torch.erf(X / 2**0.5)),
        },
    )


def test_gelu_tanh_worked_example(submission):
    """gelu_tanh([-2, -1, 0, 1, 2]): the bracket at 1 is 1.044715, tanh(0.83356) = 0.68238, so 0.84119."""
    assert_close(
        submission.gelu_tanh(X),
        torch.tensor([-0.0454023, -0.1588080, 0.0, 0.8411920, 1.9545977]),
        misconceptions={
            EXACT_FOR_TANH: torch.tensor([-0.0455003, -0.1586553, 0.0, 0.8413447, 1.9544997]),
            SIGMOID_APPROX: torch.tensor([-0.0643414, -0.1542042, 0.0, 0.8457958, 1.9356586]),
            TANH_BRACKET: torch.tensor([-0.0394101, -0.1564082, 0.0, 0.8435918, 1.9605899]),
            NO_CUBE: torch.tensor([-0.0688296, -0.1588080, 0.0, 0.8411920, 1.9311704]),
        },
    )


def test_silu_worked_example(submission):
    """silu([-2, -1, 0, 1, 2]) = x * sigmoid(x) = [-0.23841, -0.26894, 0, 0.73106, 1.76159]."""
    assert_close(
        submission.silu(X),
        torch.tensor([-0.2384058, -0.2689414, 0.0, 0.7310586, 1.7615942]),
        misconceptions={
            SIGMOID_ONLY: torch.tensor([0.1192029, 0.2689414, 0.5, 0.7310586, 0.8807971]),
        },
    )


def test_swiglu_worked_example(submission):
    """x = [1, 2]: gate = [1, 2, -1], up = [2, 3, 2], silu(gate) * up = [1.46212, 5.28478, -0.53788]."""
    x = torch.tensor([1.0, 2.0])
    w_gate = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])  # (d_ff, d_model) = (3, 2)
    w_up = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])  # (3, 2)
    w_down = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]])  # (d_model, d_ff) = (2, 3)
    assert_close(
        submission.swiglu(x, w_gate, w_up, w_down),
        torch.tensor([0.9242343, 5.8226653]),
        what="swiglu(x, w_gate, w_up, w_down) for x = [1, 2]",
        misconceptions={
            GATE_UP_SWAPPED: torch.tensor([0.0, 7.4770389]),
            SILU_ON_PRODUCT: torch.tensor([1.5231883, 6.2235701]),
            NO_ACTIVATION: torch.tensor([0.0, 8.0]),
        },
    )


def test_swiglu_batch(submission):
    """The worked example's x as the second of two tokens, in a batch of shape (1, 2, 2)."""
    x = torch.tensor([[[0.0, 0.0], [1.0, 2.0]]])
    w_gate = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    w_up = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    w_down = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]])
    assert_close(
        submission.swiglu(x, w_gate, w_up, w_down),
        torch.tensor([[[0.0, 0.0], [0.9242343, 5.8226653]]]),
        what="swiglu for x of shape (1, 2, 2)",
    )


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu"])
def test_large_inputs(submission, name):
    """Inputs of magnitude 100 and 1000 in float32: x for large positive x, 0 for large negative x."""
    x = torch.tensor([-1000.0, -100.0, 100.0, 1000.0])
    out = getattr(submission, name)(x)
    expect(isinstance(out, torch.Tensor), f"{name} must return a torch.Tensor")
    assert_close(
        out,
        torch.tensor([0.0, 0.0, 100.0, 1000.0]),
        what=f"{name}([-1000, -100, 100, 1000])",
        hint=OVERFLOW_HINT if bool((~torch.isfinite(out)).any()) else "",
    )


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu"])
def test_float16_in_float16_out(submission, name):
    """A float16 input gives a float16 output (computed in float32 inside, rounded once)."""
    x = X.half()
    out = getattr(submission, name)(x)
    expect(isinstance(out, torch.Tensor), f"{name} must return a torch.Tensor")
    expect(
        out.dtype == torch.float16,
        f"{name} returned {out.dtype} for a float16 input; the output must have the input's dtype",
        hint="compute in float32 and cast the result back with .to(x.dtype) as the last step",
    )
    oracle = {"gelu": F.gelu, "silu": F.silu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh")}[name]
    in_half = {
        "gelu": lambda t: 0.5 * t * (1 + torch.erf(t / 2**0.5)),
        "gelu_tanh": lambda t: 0.5 * t * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (t + 0.044715 * t * t * t))),
        "silu": lambda t: t * torch.sigmoid(t),
    }[name]
    assert_close(
        out,
        oracle(x.float()).half(),
        what=f"{name}(x) for x = [-2, -1, 0, 1, 2] in float16",
        misconceptions={HALF_COMPUTE: in_half(x)},
    )


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu"])
def test_gradients_small(submission, name):
    """Backward through the function at x = [-2, -1, 0, 1, 2]: the same gradient as PyTorch's."""
    oracle = {"gelu": F.gelu, "silu": F.silu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh")}[name]
    assert_close(getattr(submission, name)(X), oracle(X), what=f"{name}([-2, -1, 0, 1, 2])")
    x = X.clone().requires_grad_()
    grad_output = torch.tensor([1.0, -0.5, 2.0, 1.0, 0.25])
    assert_gradients_close(
        getattr(submission, name),
        oracle,
        (x,),
        grad_output=grad_output,
        names=("x",),
        hint="the output is right but a gradient is not: use differentiable tensor operations only (no "
        ".item(), .numpy(), .detach() or in-place writes)",
    )
