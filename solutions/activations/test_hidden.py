"""Hidden tests for activations: GELU (exact and tanh), SiLU and SwiGLU against torch.nn.functional
(the oracle, on the trusted side), in every dtype, at very large inputs, with gradients, and with
the inputs left as they were."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import (
    assert_close,
    assert_gradients_close,
    call_unchanged,
    dtype_params,
    expect,
    shrink,
    tolerance,
)

HALF = (torch.float16, torch.bfloat16)
NAMES = [pytest.param(name, id=name) for name in ("gelu", "gelu_tanh", "silu")]

# one wording per mistake, the same as in the public tests
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
UNTRANSPOSED = (
    "weights used as (in, out)? They are in nn.Linear's (out, in) layout: multiply by the transpose, "
    "x @ w_gate.T"
)
GELU_GATE = "GELU on the gate? That is GeGLU; SwiGLU's gate goes through SiLU"
SIGMOID_GATE = (
    "sigmoid on the gate? That is the original GLU; SwiGLU's gate goes through SiLU, x * sigmoid(x)"
)
RETURNED_FLOAT32 = "returned float32? Cast the result back to the input's dtype at the end"
HALF_COMPUTE = (
    "computed in half precision? For float16 and bfloat16 inputs compute in float32 and cast back once, "
    "at the end: 1 + erf(...) and 1 + tanh(...) cancel for negative x, and half precision keeps too few "
    "digits for that"
)
ALWAYS_FLOAT32 = (
    "computed in float32? A float64 input keeps float64's precision: convert only float16 and bfloat16 "
    "inputs to float32"
)
DTYPE_HINT = "compute in float32 and cast the result back with .to(x.dtype) as the last step"
OVERFLOW_HINT = (
    "non-finite values for large inputs: exp(x) overflows to inf past x = 88.7 (float32, bfloat16) or "
    "11.09 (float16), and inf / inf or 0 * inf is NaN; torch.sigmoid, torch.tanh and torch.erf never "
    "overflow, and for half inputs computing in float32 keeps x^3 finite"
)
NAN_GRADIENT = (
    "a gradient is NaN: autograd through 1 / (1 + exp(-x)) computes 0 * inf once exp(-x) overflows "
    "(x below -88.7 in float32); torch.sigmoid's backward, s * (1 - s), stays finite"
)
GRADIENT_HINT = (
    "the output is right but a gradient is not: use differentiable tensor operations only (no .item(), "
    ".numpy(), .detach() or in-place writes)"
)
HALF_MATMUL_HINT = (
    "the matmuls and the gate x up product must run in float32 too: convert x and the three weights "
    "to float32, compute, and cast the result back to x's dtype once, at the end"
)
INPLACE_HINT = (
    "compute new tensors (0.5 * x * ..., x * torch.sigmoid(x)), never x *= ..., x.mul_(...) or another "
    "in-place operation on an input (x.float() is x itself when x is float32)"
)

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def oracle(name, x):
    """PyTorch's function on x, computed in float32 (float64 for float64) and rounded to x's dtype."""
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    fn = {"gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu}[name]
    return fn(xf).to(x.dtype)


def torch_fn(name):
    return {"gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu}[name]


def formula(x, kind):
    """The likely mistakes, computed as the oracle is (float32 inside, rounded to x's dtype)."""
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    if kind == "tanh":
        y = F.gelu(xf, approximate="tanh")
    elif kind == "exact":
        y = F.gelu(xf)
    elif kind == "sigmoid-approx":
        y = xf * torch.sigmoid(1.702 * xf)
    elif kind == "bracket":
        y = 0.5 * xf * (1 + torch.tanh(SQRT_2_OVER_PI * xf + 0.044715 * xf**3))
    elif kind == "no-cube":
        y = 0.5 * xf * (1 + torch.tanh(SQRT_2_OVER_PI * (xf + 0.044715 * xf)))
    elif kind == "erf-no-sqrt2":
        y = 0.5 * xf * (1 + torch.erf(xf))
    elif kind == "no-half":
        y = xf * (1 + torch.erf(xf / math.sqrt(2.0)))
    elif kind == "sigmoid":
        y = torch.sigmoid(xf)
    else:
        raise ValueError(kind)
    return y.to(x.dtype)


def in_half(name, x):
    """The function computed in x's own (half) dtype: each operation rounded to it."""
    if name == "gelu":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1 + torch.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
    return x * torch.sigmoid(x)


def mistakes(name, x):
    """The outputs of the likely mistakes for `name` on x, to name the one made."""
    if name == "gelu":
        found = {
            GELU_TANH_FOR_EXACT: formula(x, "tanh"),
            SIGMOID_APPROX: formula(x, "sigmoid-approx"),
            ERF_NO_SQRT2: formula(x, "erf-no-sqrt2"),
            MISSING_HALF: formula(x, "no-half"),
        }
    elif name == "gelu_tanh":
        found = {
            EXACT_FOR_TANH: formula(x, "exact"),
            SIGMOID_APPROX: formula(x, "sigmoid-approx"),
            TANH_BRACKET: formula(x, "bracket"),
            NO_CUBE: formula(x, "no-cube"),
        }
    else:
        found = {SIGMOID_ONLY: formula(x, "sigmoid")}
    if x.dtype in HALF:
        found[RETURNED_FLOAT32] = oracle(name, x.float())
        found[HALF_COMPUTE] = in_half(name, x)
    if x.dtype == torch.float64:
        found[ALWAYS_FLOAT32] = oracle(name, x.float()).double()
    return found


def randn(rng, *shape, scale=1.0):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32) * np.float32(scale))


def spread(rng, n):
    """n values covering [-20, 20] densely (where the curves bend), shuffled."""
    grid = torch.linspace(-20.0, 20.0, n)
    return grid[torch.from_numpy(rng.permutation(n))]


def nonfinite(out):
    return isinstance(out, torch.Tensor) and out.is_floating_point() and not bool(torch.isfinite(out).all())


# ---------------------------------------------------------------------------- the elementwise functions

SHAPES = [
    pytest.param(("n",), id="vector"),
    pytest.param(("rows", "n"), id="matrix"),
    pytest.param(("batch", "rows", "n"), id="three-dims"),
]


@pytest.mark.parametrize("lead", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_random_inputs(submission, seed, name, lead):
    """Random float32 inputs (scale 3) of several shapes, against PyTorch's function."""
    sizes = {"batch": 2, "rows": 5, "n": 40}

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        shape = tuple(sizes[d] for d in lead)
        x = randn(rng, *shape, scale=3.0)
        assert_close(
            getattr(submission, name)(x),
            oracle(name, x),
            what=f"{name}(x) for x of shape {shape}",
            misconceptions=mistakes(name, x),
        )

    shrink(check, {d: sizes[d] for d in lead}, seed=seed, minimum={d: 1 for d in lead})


@pytest.mark.parametrize("name", NAMES)
def test_degenerate_shapes(submission, name):
    """A 0-d tensor gives a 0-d tensor; an empty tensor gives an empty tensor of the same shape."""
    for shape in [(), (0,), (3, 0, 2)]:
        x = torch.full(shape, 0.75)
        assert_close(getattr(submission, name)(x), oracle(name, x), what=f"{name}(x) for x of shape {shape}")


@pytest.mark.parametrize("dtype", dtype_params("float32", "float64", "float16", "bfloat16"))
@pytest.mark.parametrize("name", NAMES)
def test_dtypes(submission, rng, name, dtype):
    """Inputs across [-20, 20] in every dtype: x's dtype out, within the lesson's tolerance of PyTorch
    computed in float32 and rounded."""
    x = spread(rng, 4001).to(dtype)
    got = getattr(submission, name)(x)
    expect(isinstance(got, torch.Tensor), f"{name} must return a torch.Tensor")
    label = str(dtype).removeprefix("torch.")
    expect(
        got.dtype == dtype,
        f"{name}: the output's dtype must be the input's, {label}",
        detail=f"got {str(got.dtype).removeprefix('torch.')}",
        hint=DTYPE_HINT,
    )
    assert_close(
        got,
        oracle(name, x),
        what=f"{name}(x) for {label} x in [-20, 20]",
        misconceptions=mistakes(name, x),
    )


def large_values(dtype):
    if dtype == torch.float16:
        return [65504.0, 60000.0, 1000.0, 300.0, 100.0, 41.0, 20.0, 12.0, 11.5]
    return [1e30, 1e20, 1e10, 1e4, 1000.0, 100.0, 89.0, 41.0, 12.0]


@pytest.mark.parametrize("dtype", dtype_params("float32", "float16", "bfloat16"))
@pytest.mark.parametrize("name", NAMES)
def test_large_inputs(submission, name, dtype):
    """Inputs far out in both directions (up to 1e30, or float16's largest, 65504): finite outputs, x
    for large positive x and 0 for large negative x."""
    values = torch.tensor(large_values(dtype))
    x = torch.cat([values, -values]).to(dtype)
    got = getattr(submission, name)(x)
    expected = oracle(name, x)
    assert_close(
        got,
        expected,
        what=f"{name}(x) for large |x| in {str(dtype).removeprefix('torch.')}",
        hint=OVERFLOW_HINT if nonfinite(got) else "",
        misconceptions={RETURNED_FLOAT32: expected.float()} if dtype in HALF else None,
    )


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_negative_tail(submission, name, dtype):
    """Half-precision inputs in [-12, 0], where 1 + erf and 1 + tanh cancel and exp(-x) overflows
    float16: one rounding of a float32 result."""
    x = torch.linspace(-12.0, 0.0, 1201).to(dtype)
    got = getattr(submission, name)(x)
    assert_close(
        got,
        oracle(name, x),
        what=f"{name}(x) for {str(dtype).removeprefix('torch.')} x in [-12, 0]",
        hint=OVERFLOW_HINT if nonfinite(got) else "",
        misconceptions=mistakes(name, x),
    )


@pytest.mark.parametrize("name", NAMES)
def test_gradients(submission, rng, name):
    """Backward through the function on random float32 inputs: PyTorch's gradient."""
    x = torch.cat([randn(rng, 60, scale=3.0), torch.linspace(-8.0, 8.0, 41)]).requires_grad_()
    g = randn(rng, 101)
    assert_close(
        getattr(submission, name)(x.detach()),
        oracle(name, x.detach()),
        misconceptions=mistakes(name, x.detach()),
    )
    assert_gradients_close(
        getattr(submission, name), torch_fn(name), (x,), grad_output=g, names=("x",), hint=GRADIENT_HINT
    )


@pytest.mark.parametrize("name", NAMES)
def test_gradients_large_inputs(submission, rng, name):
    """Backward through the function at |x| from 50 to 1e4 in float32: finite, and PyTorch's."""
    values = torch.tensor([50.0, 88.0, 89.0, 100.0, 300.0, 1000.0, 3000.0, 1e4])
    x = torch.cat([values, -values]).requires_grad_()
    g = 1.0 + torch.from_numpy(rng.random(16).astype(np.float32))
    out = getattr(submission, name)(x.detach())
    assert_close(
        out,
        oracle(name, x.detach()),
        what=f"{name}(x) for |x| from 50 to 1e4",
        hint=OVERFLOW_HINT if nonfinite(out) else "",
        misconceptions=mistakes(name, x.detach()),
    )
    found = getattr(submission, name).backward(x, grad_output=g)
    broken = (
        len(found.inputs) == 1
        and isinstance(found.inputs[0], torch.Tensor)
        and not bool(torch.isfinite(found.inputs[0]).all())
    )
    assert_gradients_close(
        getattr(submission, name),
        torch_fn(name),
        (x,),
        grad_output=g,
        names=("x",),
        hint=NAN_GRADIENT if broken else GRADIENT_HINT,
    )


@pytest.mark.parametrize("name", NAMES)
def test_input_unchanged(submission, rng, name):
    """The function leaves a float32 x as it was (x.float() is x itself when x is float32)."""
    x = randn(rng, 4, 25, scale=3.0)
    got = call_unchanged(getattr(submission, name), x, names=("x",), what=name, hint=INPLACE_HINT)
    # only the result's type here: the values are checked in test_random_inputs (float32 matrices, scale 3)
    expect(isinstance(got, torch.Tensor), f"{name} must return a torch.Tensor")


# ---------------------------------------------------------------------------- SwiGLU


def swiglu_oracle(x, w_gate, w_up, w_down, gate_act=F.silu, on="gate"):
    """Llama's MLP with torch's own layers, in float32 (float64 for float64), rounded to x's dtype;
    `gate_act` and `on` give the likely mistakes."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    xf, wg, wu, wd = (t.to(dtype) for t in (x, w_gate, w_up, w_down))
    gate, up = F.linear(xf, wg), F.linear(xf, wu)
    if on == "gate":
        hidden = gate_act(gate) * up
    elif on == "up":
        hidden = gate_act(up) * gate
    else:  # on the product
        hidden = gate_act(gate * up)
    return F.linear(hidden, wd).to(x.dtype)


def swiglu_mistakes(x, w_gate, w_up, w_down):
    found = {
        GATE_UP_SWAPPED: swiglu_oracle(x, w_gate, w_up, w_down, on="up"),
        SILU_ON_PRODUCT: swiglu_oracle(x, w_gate, w_up, w_down, on="product"),
        NO_ACTIVATION: swiglu_oracle(x, w_gate, w_up, w_down, gate_act=lambda t: t),
        GELU_GATE: swiglu_oracle(x, w_gate, w_up, w_down, gate_act=F.gelu),
        SIGMOID_GATE: swiglu_oracle(x, w_gate, w_up, w_down, gate_act=torch.sigmoid),
    }
    if w_gate.shape[0] == w_gate.shape[1]:  # square: the paper's (in, out) layout gives a value
        found[UNTRANSPOSED] = swiglu_oracle(x, w_gate.T, w_up.T, w_down.T)
    if x.dtype in HALF:
        found[RETURNED_FLOAT32] = swiglu_oracle(x.float(), w_gate.float(), w_up.float(), w_down.float())
    return found


def weights(rng, d_model, d_ff, dtype=torch.float32):
    """Weights in nn.Linear's layout, scaled as an initialisation would (1 / sqrt(fan_in))."""
    w_gate = randn(rng, d_ff, d_model, scale=1.0 / math.sqrt(d_model)).to(dtype)
    w_up = randn(rng, d_ff, d_model, scale=1.0 / math.sqrt(d_model)).to(dtype)
    w_down = randn(rng, d_model, d_ff, scale=1.0 / math.sqrt(d_ff)).to(dtype)
    return w_gate, w_up, w_down


LEADS = [
    pytest.param((), id="a-single-vector"),
    pytest.param(("tokens",), id="tokens"),
    pytest.param(("batch", "tokens"), id="batch-tokens"),
]


@pytest.mark.parametrize("lead", LEADS)
def test_swiglu_random(submission, seed, lead):
    """SwiGLU on random inputs with d_ff != d_model, for any number of leading dims, against Llama's
    MLP built from torch's own layers."""
    sizes = {"batch": 2, "tokens": 7, "d_model": 24, "d_ff": 40}

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        shape = tuple(sizes[d] for d in lead) + (sizes["d_model"],)
        x = randn(rng, *shape, scale=2.0)
        w = weights(rng, sizes["d_model"], sizes["d_ff"])
        assert_close(
            submission.swiglu(x, *w),
            swiglu_oracle(x, *w),
            what=f"swiglu for x of shape {shape} and d_ff = {sizes['d_ff']}",
            misconceptions=swiglu_mistakes(x, *w),
            **tolerance(torch.float32),
        )

    used = {d: sizes[d] for d in (*lead, "d_model", "d_ff")}
    floor = {"batch": 1, "tokens": 1, "d_model": 2, "d_ff": 3}  # d_ff != d_model all the way down
    shrink(check, used, seed=seed, minimum={d: floor[d] for d in used})


def test_swiglu_square_weights(submission, rng):
    """SwiGLU with d_ff = d_model, where weights used as (in, out) do not fail on shapes."""
    x = randn(rng, 3, 5, 16, scale=2.0)
    w = weights(rng, 16, 16)
    assert_close(
        submission.swiglu(x, *w),
        swiglu_oracle(x, *w),
        what="swiglu with square weights (d_ff = d_model = 16)",
        misconceptions=swiglu_mistakes(x, *w),
        **tolerance(torch.float32),
    )


def test_swiglu_large_gate(submission, rng):
    """Gate values in the hundreds, both signs: SiLU stays finite inside SwiGLU."""
    x = randn(rng, 4, 8, scale=50.0)
    w = weights(rng, 8, 12)
    got = submission.swiglu(x, *w)
    assert_close(
        got,
        swiglu_oracle(x, *w),
        what="swiglu with gate values in the hundreds",
        hint=OVERFLOW_HINT if nonfinite(got) else "",
        misconceptions=swiglu_mistakes(x, *w),
        **tolerance(torch.float32),
    )


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
def test_swiglu_half_precision(submission, rng, dtype):
    """float16 and bfloat16 SwiGLU: the input's dtype out, computed in float32 inside."""
    x = randn(rng, 2, 6, 32, scale=2.0).to(dtype)
    w = weights(rng, 32, 48, dtype)
    got = submission.swiglu(x, *w)
    expect(isinstance(got, torch.Tensor), "swiglu must return a torch.Tensor")
    label = str(dtype).removeprefix("torch.")
    expect(
        got.dtype == dtype,
        f"swiglu: the output's dtype must be the input's, {label}",
        detail=f"got {str(got.dtype).removeprefix('torch.')}",
        hint=DTYPE_HINT,
    )
    assert_close(
        got,
        swiglu_oracle(x, *w),
        what=f"swiglu in {label}",
        misconceptions=swiglu_mistakes(x, *w),
        **tolerance(dtype),
    )


def test_swiglu_float16_intermediates_beyond_its_range(submission, rng):
    """float16 SwiGLU whose gate x up product passes 65504 (the largest float16) while the output
    does not: finite and right only when the inside is computed in float32."""
    x = randn(rng, 2, 4, 16).to(torch.float16)
    w_gate, w_up, w_down = weights(rng, 16, 24)
    # gate and up of a few hundred each: their product reaches 1e5 and beyond; w_down brings it back
    w_gate, w_up = (w * 150.0 for w in (w_gate, w_up))
    w = (w_gate.half(), w_up.half(), (w_down * 1e-3).half())
    expected = swiglu_oracle(x, *w)
    assert bool(expected.isfinite().all()), "the case must be finite in float32"
    assert_close(
        submission.swiglu(x, *w),
        expected,
        what="swiglu in float16",
        hint=HALF_MATMUL_HINT,
        **tolerance(torch.float16),
    )


def test_swiglu_gradients(submission, rng):
    """Backward through SwiGLU (float32): the gradients of x and of the three weights."""
    x = randn(rng, 2, 5, 12, scale=2.0)
    w = weights(rng, 12, 20)
    assert_close(
        submission.swiglu(x, *w),
        swiglu_oracle(x, *w),
        what="swiglu",
        misconceptions=swiglu_mistakes(x, *w),
        **tolerance(torch.float32),
    )
    args = tuple(t.clone().requires_grad_() for t in (x, *w))
    g = randn(rng, 2, 5, 12)
    assert_gradients_close(
        submission.swiglu,
        swiglu_oracle,
        args,
        grad_output=g,
        names=("x", "w_gate", "w_up", "w_down"),
        hint=GRADIENT_HINT,
        **tolerance(torch.float32),
    )


def test_swiglu_inputs_unchanged(submission, rng):
    """swiglu leaves x and the three weights as they were."""
    x = randn(rng, 3, 10, scale=2.0)
    w = weights(rng, 10, 14)
    got = call_unchanged(
        submission.swiglu,
        x,
        *w,
        names=("x", "w_gate", "w_up", "w_down"),
        what="swiglu",
        hint=INPLACE_HINT,
    )
    # only the result's type here: the values are checked in test_swiglu_random (float32, d_ff != d_model)
    expect(isinstance(got, torch.Tensor), "swiglu must return a torch.Tensor")
