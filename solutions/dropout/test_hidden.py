"""Hidden tests for dropout: the pinned rule (computed here, on the trusted side, with the same
seed) on random shapes, F.dropout as the oracle where its answer is deterministic (p = 0, p = 1,
evaluation mode, invalid p), the seed, half precision, gradients, the input left alone, and a
statistical check of the expectation."""

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
)

HALF = (torch.float16, torch.bfloat16)

# one wording per mistake, the same as in the public tests
NOT_RESCALED = "the kept elements were not rescaled? Inverted dropout multiplies them by 1 / (1 - p)"
SCALED_BY_P = "scaled by 1 / p? p is the probability of dropping: the kept elements are scaled by 1 / (1 - p)"
MULTIPLIED_BY_KEEP_PROB = (
    "multiplied by 1 - p? That is the old test-time rule: inverted dropout divides by 1 - p"
)
KEEP_INVERTED = "kept the elements where u < p? Those are the dropped ones: keep where u >= p"
P_ONE_NAN = "NaN for p = 1: x * keep / (1 - p) is 0 / 0 when nothing is kept; use a scale of 0 when p == 1"
RAND_IN_X_DTYPE = (
    "drew u in x's dtype (torch.rand_like(x) or dtype=x.dtype)? u is float32 whatever x's dtype, so that "
    "a seed gives the same mask for every dtype"
)
RETURNED_FLOAT32 = "returned float32? Cast the result back to the input's dtype at the end"
MASK_HINT = (
    "the zeros are not where the rule puts them: draw u = torch.rand(x.shape, "
    "generator=torch.Generator().manual_seed(seed), dtype=torch.float32), once, and keep where u >= p"
)
DTYPE_HINT = "compute in float32 and cast the result back with .to(x.dtype) as the last step"
EVAL_HINT = "dropout is the identity at evaluation time: with training=False return x"
GRADIENT_HINT = (
    "the output is right but a gradient is not: compute the output with tensor operations on x "
    "(x * keep * scale), no .detach(), .item() or in-place writes"
)
INPLACE_HINT = (
    "x is still needed by the caller (the residual stream): compute a new tensor, x * keep * scale, "
    "never x *= ..., x.mul_(...) or x[~keep] = 0 (x.float() is x itself when x is float32)"
)


def draw(shape, seed, dtype=torch.float32):
    """The rule's uniform numbers: one per element, from a fresh generator seeded with `seed`."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rule(x, p, seed, *, keep_dtype=torch.float32):
    """The lesson's rule, computed here: (kept mask, output in x's dtype)."""
    keep = draw(x.shape, seed, keep_dtype) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    compute = torch.promote_types(x.dtype, torch.float32)
    return keep, (x.to(compute) * keep * scale).to(x.dtype)


def mistakes(x, p, seed):
    """The outputs of the likely mistakes for dropout(x, p, seed=seed)."""
    keep, _ = rule(x, p, seed)
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    found = {
        NOT_RESCALED: (xf * keep).to(x.dtype),
        MULTIPLIED_BY_KEEP_PROB: (xf * keep * (1 - p)).to(x.dtype),
        KEEP_INVERTED: (xf * ~keep / (1 - p)).to(x.dtype),
    }
    if p > 0:
        found[SCALED_BY_P] = (xf * keep / p).to(x.dtype)
    if x.dtype != torch.float32:
        found[RAND_IN_X_DTYPE] = rule(x, p, seed, keep_dtype=x.dtype)[1]
    if x.dtype in HALF:
        found[RETURNED_FLOAT32] = rule(xf, p, seed)[1]
    return found


def randn(rng, *shape, dtype=torch.float32):
    """Random values away from zero (|x| >= 0.1), so that a kept element is never 0."""
    x = rng.standard_normal(shape).astype(np.float32)
    x = np.where(np.abs(x) < 0.1, np.float32(0.5), x)
    return torch.from_numpy(np.asarray(x, dtype=np.float32)).to(dtype)


def seed_from(rng):
    return int(rng.integers(0, 2**31))


def check_rule(got, x, p, seed, *, what):
    """`got` = dropout(x, p, training=True, seed=seed): the zeros exactly where the rule puts them,
    the kept values within x's dtype's tolerance."""
    keep, expected = rule(x, p, seed)
    expect(isinstance(got, torch.Tensor), "dropout must return a torch.Tensor")
    expect(
        got.shape == x.shape,
        f"{what}: the output must have x's shape",
        detail=f"got shape {tuple(got.shape)}, x has {tuple(x.shape)}",
    )
    expect(got.dtype == x.dtype, f"{what}: the output must have x's dtype", hint=DTYPE_HINT)
    zeros_match = bool(torch.equal(got == 0, ~keep))
    assert_close(
        got, expected, what=what, misconceptions=mistakes(x, p, seed), hint="" if zeros_match else MASK_HINT
    )
    expect(zeros_match, f"{what}: the zeros are not where the rule puts them", hint=MASK_HINT)


# ---------------------------------------------------------------------------- the rule

PS = [pytest.param(p, id=f"p={p}") for p in (0.1, 0.5, 0.8)]
SHAPES = [
    pytest.param(("n",), id="vector"),
    pytest.param(("rows", "n"), id="matrix"),
    pytest.param(("batch", "rows", "n"), id="three-dims"),
]


@pytest.mark.parametrize("lead", SHAPES)
@pytest.mark.parametrize("p", PS)
def test_rule_random_shapes(submission, seed, p, lead):
    """Training mode on random inputs of several shapes: exactly the lesson's rule for the seed."""
    sizes = {"batch": 3, "rows": 6, "n": 50}

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        shape = tuple(sizes[d] for d in lead)
        x = randn(rng, *shape)
        s = seed_from(rng)
        got = submission.dropout(x, p=p, training=True, seed=s)
        check_rule(got, x, p, s, what=f"dropout(x, p={p}, seed=...) for x of shape {shape}")

    shrink(check, {d: sizes[d] for d in lead}, seed=seed, minimum={d: 1 for d in lead})


def test_degenerate_shapes(submission, rng):
    """A 0-d x gives a 0-d output; an empty x gives an empty output of the same shape."""
    for shape in [(), (0,), (4, 0, 3)]:
        x = torch.full(shape, 1.5)
        for s in (0, 1, 2):  # a 0-d x is kept for some seeds and dropped for others
            check_rule(
                submission.dropout(x, p=0.5, seed=s),
                x,
                0.5,
                s,
                what=f"dropout(x, p=0.5, seed={s}) for x of shape {shape}",
            )


def test_positional_arguments(submission, rng):
    """dropout(x, p, training, seed) with all four passed by position, as the skeleton's signature."""
    x = randn(rng, 5, 12)
    s = seed_from(rng)
    check_rule(submission.dropout(x, 0.3, True, s), x, 0.3, s, what="dropout(x, 0.3, True, seed)")


# ---------------------------------------------------------------------------- edge cases, against F.dropout


@pytest.mark.parametrize("dtype", dtype_params("float32", "float64", "float16", "bfloat16"))
def test_p_zero(submission, rng, dtype):
    """p = 0 in training mode gives x back exactly, in every dtype (as F.dropout(x, 0.0) does)."""
    x = randn(rng, 6, 20, dtype=dtype)
    assert_close(
        submission.dropout(x, p=0.0, training=True, seed=seed_from(rng)),
        F.dropout(x, p=0.0, training=True),
        rtol=0.0,
        atol=0.0,
        hint="with p = 0 every u >= 0 is kept and the scale is 1: x comes back unchanged",
    )


@pytest.mark.parametrize("dtype", dtype_params("float32", "float64", "float16", "bfloat16"))
def test_p_one(submission, rng, dtype):
    """p = 1 in training mode gives zeros of x's shape and dtype, never NaN (as F.dropout(x, 1.0))."""
    x = randn(rng, 6, 20, dtype=dtype)
    got = submission.dropout(x, p=1.0, training=True, seed=seed_from(rng))
    nan = isinstance(got, torch.Tensor) and got.is_floating_point() and bool(torch.isnan(got).any())
    assert_close(
        got,
        F.dropout(x, p=1.0, training=True),
        rtol=0.0,
        atol=0.0,
        hint=P_ONE_NAN if nan else "",
        misconceptions={RETURNED_FLOAT32: torch.zeros(6, 20)} if dtype != torch.float32 else None,
    )


@pytest.mark.parametrize("p", [pytest.param(p, id=f"p={p}") for p in (0.0, 0.3, 0.9, 1.0)])
@pytest.mark.parametrize("dtype", dtype_params("float32", "float16", "bfloat16"))
def test_eval_mode(submission, rng, dtype, p):
    """training=False returns x unchanged for any valid p, in every dtype (as F.dropout does)."""
    x = randn(rng, 4, 30, dtype=dtype)
    assert_close(
        submission.dropout(x, p=p, training=False, seed=seed_from(rng)),
        F.dropout(x, p=p, training=False),
        rtol=0.0,
        atol=0.0,
        hint=EVAL_HINT,
    )


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(-0.1, id="negative"),
        pytest.param(-1e-9, id="just-below-0"),
        pytest.param(1.5, id="above-1"),
        pytest.param(1.0 + 1e-9, id="just-above-1"),
        pytest.param(math.nan, id="nan"),
    ],
)
@pytest.mark.parametrize("training", [pytest.param(True, id="training"), pytest.param(False, id="eval")])
def test_invalid_p_raises(submission, p, training):
    """p outside [0, 1], or NaN, raises ValueError, in training and in evaluation mode alike."""
    x = torch.ones(3, 4)
    try:
        submission.dropout(x, p=p, training=training, seed=0)
    except ValueError:
        return
    hint = (
        "every comparison with NaN is False, so `p < 0 or p > 1` lets NaN through: check `not 0 <= p <= 1`"
        if math.isnan(p)
        else "check p first, before looking at training"
        if not training
        else ""
    )
    pytest.fail(
        f"dropout(x, p={p}, training={training}) returned normally; it must raise ValueError"
        + (f" (hint: {hint})" if hint else "")
    )


# ---------------------------------------------------------------------------- the seed


def test_seed_decides_the_mask(submission, rng):
    """The same seed gives the same output twice; each of four seeds gives the rule's own mask."""
    x = randn(rng, 8, 40)
    s = seed_from(rng)
    first = submission.dropout(x, p=0.4, seed=s)
    again = submission.dropout(x, p=0.4, seed=s)
    assert_close(
        again,
        first,
        rtol=0.0,
        atol=0.0,
        what="a second call with the same seed",
        hint="the mask must come from torch.Generator().manual_seed(seed), not from torch's global generator",
    )
    for other in (s + 1, s + 2, 0, 2**31 - 1):
        check_rule(submission.dropout(x, p=0.4, seed=other), x, 0.4, other, what="dropout with another seed")


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16", "float64"))
def test_dtypes(submission, rng, dtype):
    """float16, bfloat16 and float64 inputs: the same mask as float32 (u is float32), x's dtype out."""
    x = randn(rng, 200, 250, dtype=dtype)
    s = seed_from(rng)
    got = submission.dropout(x, p=0.3, seed=s)
    expect(isinstance(got, torch.Tensor), "dropout must return a torch.Tensor")
    label = str(dtype).removeprefix("torch.")
    expect(
        got.dtype == dtype,
        f"dropout: the output's dtype must be the input's, {label}",
        detail=f"got {str(got.dtype).removeprefix('torch.')}",
        hint=DTYPE_HINT,
    )
    check_rule(got, x, 0.3, s, what=f"dropout(x, p=0.3) for {label} x")


# ---------------------------------------------------------------------------- gradients


def oracle(x, p, training, seed):
    """The rule as a differentiable function of x (the reference's arithmetic)."""
    if not training:
        return x
    keep = draw(x.shape, seed) >= p
    return x * keep * (0.0 if p == 1.0 else 1.0 / (1.0 - p))


@pytest.mark.parametrize(
    "p, training",
    [
        pytest.param(0.2, True, id="p=0.2"),
        pytest.param(0.5, True, id="p=0.5"),
        pytest.param(0.9, True, id="p=0.9"),
        pytest.param(0.5, False, id="eval"),
    ],
)
def test_gradients(submission, rng, p, training):
    """Backward through dropout: grad_output * keep / (1 - p) in training, grad_output in eval."""
    x = randn(rng, 7, 30)
    s = seed_from(rng)
    if training:
        check_rule(submission.dropout(x, p=p, seed=s), x, p, s, what=f"dropout(x, p={p})")
    else:
        assert_close(
            submission.dropout(x, p=p, training=False, seed=s), x, rtol=0.0, atol=0.0, hint=EVAL_HINT
        )
    g = randn(rng, 7, 30)
    assert_gradients_close(
        submission.dropout,
        oracle,
        (x.clone().requires_grad_(),),
        {"p": p, "training": training, "seed": s},
        grad_output=g,
        names=("x",),
        hint=GRADIENT_HINT,
    )


# ---------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("training", [pytest.param(True, id="training"), pytest.param(False, id="eval")])
def test_input_unchanged(submission, rng, training):
    """dropout leaves a float32 x as it was (x.float() is x itself when x is float32)."""
    x = randn(rng, 5, 24)
    s = seed_from(rng)
    got = call_unchanged(
        submission.dropout,
        x,
        names=("x",),
        what="dropout",
        hint=INPLACE_HINT,
        p=0.4,
        training=training,
        seed=s,
    )
    # only the result's type here: the values are checked in test_rule_random_shapes (training, float32)
    # and test_eval_mode (eval)
    expect(isinstance(got, torch.Tensor), "dropout must return a torch.Tensor")


# ---------------------------------------------------------------------------- statistics

N = 200_000


@pytest.mark.parametrize("p", [pytest.param(p, id=f"p={p}") for p in (0.1, 0.3, 0.7)])
def test_expectation_preserved(submission, rng, p):
    """On 200 000 elements the fraction dropped is p, and the mean of the output the mean of the
    input, each within 6 standard deviations.

    With x = 1.5 everywhere: the fraction of zeros has standard deviation sqrt(p (1 - p) / N), and
    the mean of the output 1.5 sqrt(p / ((1 - p) N)); 6 of them is a failure once in 1e9 seeds."""
    x = torch.full((N,), 1.5)
    got = submission.dropout(x, p=p, seed=seed_from(rng))
    expect(
        isinstance(got, torch.Tensor) and got.shape == x.shape, "dropout must return a tensor of x's shape"
    )
    dropped = float((got == 0).double().mean())
    bound = 6 * math.sqrt(p * (1 - p) / N)
    expect(
        abs(dropped - p) <= bound,
        f"the fraction of zeros is not within {bound:.4f} of p = {p}",
        detail=f"{dropped:.4f} of the elements are zero",
        hint="drop where u < p (keep where u >= p): the fraction dropped must be p",
    )
    mean = float(got.double().mean())
    bound = 6 * 1.5 * math.sqrt(p / ((1 - p) * N))
    expect(
        abs(mean - 1.5) <= bound,
        f"the mean of the output is not within {bound:.4f} of the input's mean, 1.5",
        detail=f"the mean of the output is {mean:.4f}",
        hint="the kept elements are scaled by 1 / (1 - p), so that E[output] = x",
    )
