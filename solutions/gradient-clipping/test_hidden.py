"""Hidden tests for gradient-clipping: the submission against torch.nn.utils.clip_grad_norm_ (the
oracle, run here on copies of the same parameters) on random parameters above, below and at the
limit, missing gradients, tiny and zero gradients, every floating dtype, float16 overflow,
non-finite norms, the in-place update, and the parameters themselves left alone.

Parameters and gradients are kept in the runner (`kept_in_runner`), with each p.grad set to a
tensor that has a handle of its own: after the call, p.grad, the original gradient tensor and p
itself are read back, so an update that replaces p.grad instead of scaling it shows.
"""

import math

import numpy as np
import pytest
import torch

from grader.testing import assert_close, dtype_params, expect, kept_in_runner, shrink, tolerance

PER_TENSOR = "clipped each tensor by its own norm? Use one coefficient for all, from the global norm"
SUM_OF_NORMS = "added the norms of the tensors? The global norm is sqrt(sum of the squared norms)"
NO_CLAMP = "scaled small gradients up? Clamp the coefficient at 1.0: below max_norm nothing changes"
CLIPPED_NORM = "returned the norm after clipping? Return total_norm, the norm before clipping"
SQUARED = "returned the squared norm? Take the square root of the sum of squares"
NO_EPS = "left out the 1e-6? The coefficient is max_norm / (total_norm + 1e-6), clamped at 1.0"
UNCHANGED_AT_LIMIT = (
    "the gradients came out unchanged where the total norm equals max_norm: the coefficient is "
    "max_norm / (total_norm + 1e-6), 1e-6 included, a little below 1 there; always multiply by it"
)
HALF_OVERFLOW = (
    "summed squares in float16? They overflow past 65504: use torch.linalg.vector_norm (it accumulates "
    "in float32) or compute the norms in float32, then return the total in the gradients' dtype"
)
RETURNED_FLOAT32 = "returned the norm in float32? Return it in the gradients' dtype, as PyTorch does"
NON_FINITE_HINT = (
    "with an inf or NaN gradient, follow the formula with no special case (as error_if_nonfinite=False): "
    "an inf norm gives a coefficient of 0, a NaN norm a coefficient of NaN; return that norm, do not raise"
)
NONE_HINT = "skip parameters whose .grad is None; leave it None"
IN_PLACE_HINT = (
    "scale each gradient in place (g.mul_(coef)); p.grad = p.grad * coef puts a new tensor there and "
    "leaves the original one as it was"
)


# ---------------------------------------------------------------------------- helpers


def randn(rng, *shape, scale=1.0):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32) * np.float32(scale))


def random_shapes(rng, count, size):
    """`count` shapes of 1 to 3 dims (vectors, matrices, 3-d tensors), each dim 1..size."""
    return [tuple(int(d) for d in rng.integers(1, size + 1, size=1 + i % 3)) for i in range(count)]


def global_norm(grads):
    present = [g.double() for g in grads if g is not None]
    return math.sqrt(sum(float((g * g).sum()) for g in present))


def scaled_to(grads, norm):
    """The gradients, rescaled (in float64) so that their global norm is `norm`, back in their dtype."""
    now = global_norm(grads)
    return [None if g is None else (g.double() * (norm / now)).to(g.dtype) for g in grads]


def torch_clip(grads, max_norm):
    """The oracle: torch.nn.utils.clip_grad_norm_ on fresh parameters holding copies of `grads`."""
    params = []
    for g in grads:
        p = torch.zeros(g.shape if g is not None else (2,), dtype=g.dtype if g is not None else torch.float32)
        p.requires_grad_(True)
        if g is not None:
            p.grad = g.clone()
        params.append(p)
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return norm, [p.grad for p in params]


def clip_in_runner(submission, values, grads, max_norm):
    """Parameters with `values` and gradients `grads` (None: no .grad), kept in the runner; call
    clip_grad_norm_ on them there. Returns (the returned norm, each p.grad after the call, each
    original gradient tensor after the call, each parameter's value after the call)."""
    fn = submission.clip_grad_norm_
    params, kept_grads = [], []
    for value, grad in zip(values, grads, strict=True):
        p = kept_in_runner(fn, value.clone().requires_grad_(True))
        g = None
        if grad is not None:
            g = kept_in_runner(fn, grad.clone())
            p.grad = g
        params.append(p)
        kept_grads.append(g)
    norm = fn(params, max_norm)
    p_grads = [p.attr("grad") for p in params]
    originals = [None if g is None else g.read_back() for g in kept_grads]
    after = [p.read_back() for p in params]
    return norm, p_grads, originals, after


def param_values(rng, grads):
    """Non-zero parameter values of each gradient's shape and dtype (any shape where it is None)."""
    return [randn(rng, 2) if g is None else randn(rng, *g.shape).to(g.dtype) for g in grads]


def mistakes(grads, max_norm):
    """What the likely mistakes give: (for the gradients, for the returned norm). In float64 tensors,
    so that inf and NaN propagate as they do in the mistakes themselves."""
    present = [g for g in grads if g is not None]
    dtype = present[0].dtype
    norms = torch.stack([torch.linalg.vector_norm(g.double()) for g in present])
    total = torch.linalg.vector_norm(norms)

    def scaled(coef):
        return [None if g is None else (g.double() * coef(g)).to(g.dtype) for g in grads]

    def clamped(norm):
        return torch.clamp(max_norm / (norm + 1e-6), max=1.0)

    on_grads = {
        PER_TENSOR: scaled(lambda g: clamped(torch.linalg.vector_norm(g.double()))),
        SUM_OF_NORMS: scaled(lambda g: clamped(norms.sum())),
        NO_CLAMP: scaled(lambda g: max_norm / (total + 1e-6)),
    }
    if total > 0:
        on_grads[NO_EPS] = scaled(lambda g: torch.clamp(max_norm / total, max=1.0))
    on_norm = {}
    if dtype == torch.float16:
        squares = sum((g * g).sum() for g in present)  # the float16 sum of squares, as the mistake does
        if not torch.isfinite(squares):
            on_norm[HALF_OVERFLOW] = torch.tensor(float("inf"), dtype=dtype)
            on_grads[HALF_OVERFLOW] = [None if g is None else g * 0.0 for g in grads]
    on_norm[CLIPPED_NORM] = (total * clamped(total)).to(dtype)  # the norm after clipping
    on_norm[SUM_OF_NORMS] = norms.sum().to(dtype)
    on_norm[SQUARED] = (total * total).to(dtype)
    if dtype != torch.float32:
        on_norm[RETURNED_FLOAT32] = total.float()
    # a mistake is named only where it gives a finite value of its own (a square that overflows
    # float16 is inf, like the overflow itself); the norm after clipping is NaN after an inf one
    on_norm = {
        k: v for k, v in on_norm.items() if k in (HALF_OVERFLOW, CLIPPED_NORM) or bool(torch.isfinite(v))
    }
    return on_grads, on_norm


def check_clip(submission, rng, grads, max_norm, *, tol=None, equal_nan=False, hint="", what=""):
    """clip_grad_norm_ in the runner against torch's on the same parameters: the returned norm,
    every p.grad, and the in-place update of the original gradient tensors. (The parameters' own
    values are checked apart, in test_parameters_left_alone.)"""
    tol = tol or {}
    values = param_values(rng, grads)
    want_norm, want_grads = torch_clip(grads, max_norm)
    on_grads, on_norm = mistakes(grads, max_norm) if any(g is not None for g in grads) else ({}, {})
    norm, p_grads, originals, _ = clip_in_runner(submission, values, grads, max_norm)
    label = f" ({what})" if what else ""
    assert_close(
        norm,
        want_norm,
        what=f"the returned norm{label}",
        equal_nan=equal_nan,
        hint=hint,
        misconceptions=on_norm,
        **tol,
    )
    for got, want in zip(p_grads, want_grads, strict=True):
        if want is None:
            expect(got is None, "a parameter without gradient has a .grad after the call", hint=NONE_HINT)
    assert_close(
        p_grads,
        want_grads,
        what=f"the gradients after clipping{label}",
        equal_nan=equal_nan,
        hint=hint,
        misconceptions=on_grads,
        **tol,
    )
    assert_close(
        originals,
        want_grads,
        what=f"the gradient tensors that were in p.grad before the call{label}",
        equal_nan=equal_nan,
        hint=IN_PLACE_HINT,
        **tol,
    )


# ---------------------------------------------------------------------------- random parameters


@pytest.mark.parametrize(
    "ratio", [pytest.param(3.0, id="above-the-limit"), pytest.param(0.4, id="below-the-limit")]
)
def test_random_params(submission, seed, ratio):
    """Random parameters of several shapes whose total norm is above (3x) or below (0.4x) max_norm."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        shapes = random_shapes(rng, sizes["params"], sizes["size"])
        max_norm = float(rng.uniform(0.5, 2.0))
        grads = scaled_to([randn(rng, *s) for s in shapes], ratio * max_norm)
        check_clip(
            submission, rng, grads, max_norm, what=f"{len(shapes)} parameters, total norm {ratio} x max_norm"
        )

    # at least 2 parameters: with one, clipping per tensor and globally are the same
    shrink(check, {"params": 6, "size": 9}, seed=seed, minimum={"params": 2, "size": 1})


def test_at_the_limit(submission, rng):
    """The total norm equals max_norm exactly: the gradients are scaled by max_norm / (max_norm + 1e-6)."""
    grads = [randn(rng, 4, 3, scale=1e-3), randn(rng, 5, scale=1e-3)]
    max_norm = float(torch.nn.utils.get_total_norm(grads))  # exactly the norm torch computes
    wrong_grads, wrong_norm = mistakes(grads, max_norm)
    on_grads = {UNCHANGED_AT_LIMIT: grads, **wrong_grads}
    want_norm, want_grads = torch_clip(grads, max_norm)
    norm, p_grads, _, _ = clip_in_runner(submission, param_values(rng, grads), grads, max_norm)
    assert_close(norm, want_norm, what="the returned norm (at the limit)", misconceptions=wrong_norm)
    # the coefficient is 1 - 1e-6 / max_norm, about 1 - 3e-4 here: a tight tolerance shows it
    assert_close(
        p_grads,
        want_grads,
        what="the gradients after clipping at the limit",
        rtol=2e-6,
        atol=0.0,
        misconceptions=on_grads,
    )


# ---------------------------------------------------------------------------- eps and zeros


@pytest.mark.parametrize(
    ("total", "max_norm"),
    [pytest.param(2e-6, 1e-6, id="norm-2e-6-max-1e-6"), pytest.param(1e-5, 5e-6, id="norm-1e-5-max-5e-6")],
)
def test_tiny_gradients(submission, rng, total, max_norm):
    """Gradients whose total norm is of the order of 1e-6, where the 1e-6 in the coefficient matters."""
    grads = scaled_to([randn(rng, 3, 4), randn(rng, 7), randn(rng, 2, 2, 2)], total)
    check_clip(submission, rng, grads, max_norm, tol={"rtol": 1e-5, "atol": 0.0}, what="tiny gradients")


def test_max_norm_zero(submission, rng):
    """max_norm = 0 sets every gradient to zero, and the norm before clipping is returned."""
    grads = [randn(rng, 3, 5), randn(rng, 4)]
    check_clip(submission, rng, grads, 0.0, what="max_norm = 0")


@pytest.mark.parametrize("max_norm", [pytest.param(1.0, id="max-norm-1"), pytest.param(0.0, id="max-norm-0")])
def test_zero_gradients(submission, rng, max_norm):
    """Gradients that are all zero stay zero (never NaN), and the returned norm is 0."""
    grads = [torch.zeros(3, 4), torch.zeros(6)]
    values = param_values(rng, grads)
    norm, p_grads, _, _ = clip_in_runner(submission, values, grads, max_norm)
    nan = any(isinstance(g, torch.Tensor) and bool(torch.isnan(g).any()) for g in p_grads)
    expect(
        not nan,
        "all-zero gradients came out with NaN values",
        hint="the 1e-6 is added to the norm so that max_norm / (0 + 1e-6) is a number: keep it there",
    )
    want_norm, want_grads = torch_clip(grads, max_norm)
    assert_close(norm, want_norm, what="the returned norm for all-zero gradients")
    assert_close(p_grads, want_grads, what="all-zero gradients after clipping")


# ---------------------------------------------------------------------------- missing gradients


@pytest.mark.parametrize(
    "missing",
    [
        pytest.param((0,), id="first"),
        pytest.param((1, 2), id="two-in-the-middle"),
        pytest.param((4,), id="last"),
    ],
)
def test_params_without_grad(submission, rng, missing):
    """Parameters whose .grad is None, in any position, are skipped and keep .grad None."""
    shapes = [(3, 4), (5,), (2, 2, 3), (6,), (4, 2)]
    grads = [None if i in missing else randn(rng, *s) for i, s in enumerate(shapes)]
    grads = scaled_to(grads, 5.0)
    check_clip(submission, rng, grads, 2.0, what="some parameters without gradient")


@pytest.mark.parametrize("count", [pytest.param(0, id="empty-list"), pytest.param(3, id="no-grad-at-all")])
def test_no_gradients_at_all(submission, rng, count):
    """No parameter has a gradient (or there are none): nothing changes and torch.tensor(0.0) is returned."""
    grads = [None] * count
    norm, p_grads, _, after = clip_in_runner(submission, param_values(rng, grads), grads, 1.0)
    expect(
        all(g is None for g in p_grads),
        "a parameter without gradient has a .grad after the call",
        hint=NONE_HINT,
    )
    assert_close(
        norm,
        torch.tensor(0.0),
        what="the returned norm when no parameter has a gradient",
        hint="with no gradients at all, return torch.tensor(0.0) (a float32 0-dim tensor)",
    )


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", dtype_params("float64", "float16", "bfloat16"))
def test_dtypes(submission, rng, dtype):
    """Gradients in float64, float16 or bfloat16: the norm and the gradients keep that dtype."""
    grads = [g.to(dtype) for g in scaled_to([randn(rng, 16, 8), randn(rng, 33), randn(rng, 2, 3, 5)], 6.0)]
    check_clip(submission, rng, grads, 1.5, tol=tolerance(dtype), what=str(dtype).removeprefix("torch."))


@pytest.mark.parametrize(
    "case", [pytest.param("outliers", id="entries-of-300"), pytest.param("many", id="many-moderate-entries")]
)
def test_float16_large_gradients(submission, rng, case):
    """float16 gradients whose sum of squares is past 65504, float16's largest value: their norm is not."""
    if case == "outliers":
        big = torch.full((10,), 300.0)
        big[::2] = -300.0
    else:
        big = randn(rng, 64, 64, scale=8.0)  # sum of squares about 260000, norm about 512
    grads = [big.half(), randn(rng, 7).half(), randn(rng, 3, 3).half()]
    check_clip(submission, rng, grads, 1.0, tol=tolerance(torch.float16), what="large float16 gradients")


# ---------------------------------------------------------------------------- non-finite


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(float("inf"), id="inf"),
        pytest.param(float("-inf"), id="minus-inf"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_non_finite(submission, rng, bad):
    """A gradient holding inf or NaN: the formula applies as it is, and the non-finite norm is returned."""
    first = randn(rng, 3, 4)
    first[1, 2] = bad
    grads = [first, randn(rng, 5), randn(rng, 2, 2)]
    check_clip(
        submission, rng, grads, 1.0, equal_nan=True, hint=NON_FINITE_HINT, what="a non-finite gradient"
    )


# ---------------------------------------------------------------------------- in place


def test_in_place_many_params(submission, rng):
    """Twelve parameters: every p.grad tensor is scaled in place (the tensor p.grad held, not a new one)."""
    shapes = random_shapes(rng, 12, 6)
    grads = scaled_to([randn(rng, *s) for s in shapes], 10.0)
    check_clip(submission, rng, grads, 1.0, what="twelve parameters")


@pytest.mark.parametrize("max_norm", [pytest.param(1.0, id="max-norm-1"), pytest.param(0.0, id="max-norm-0")])
def test_parameters_left_alone(submission, rng, max_norm):
    """clip_grad_norm_ changes the gradients only: the parameters' own values stay as they were."""
    shapes = random_shapes(rng, 6, 5)
    grads = scaled_to([randn(rng, *s) for s in shapes], 10.0)
    values = param_values(rng, grads)
    _, _, _, after = clip_in_runner(submission, values, grads, max_norm)
    # only the parameters here: the norm and the gradients are checked in test_in_place_many_params,
    # test_random_params and test_max_norm_zero
    assert_close(after, values, what="the parameters' own values", hint="scale p.grad, never p itself")
