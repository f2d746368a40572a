"""Hidden tests for layernorm: random shapes against torch's F.layer_norm and F.batch_norm (trusted
side only), eps, constant rows, large offsets, training and evaluation, the running statistics,
one value per channel, dtypes, gradients through the runner, and inputs left unchanged."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: submissions may not call it

from grader.testing import (
    assert_close,
    assert_gradients_close,
    call_unchanged,
    compare,
    dtype_params,
    expect,
    shrink,
)

HALF = (torch.float16, torch.bfloat16)

# one wording per mistake, the same as in the public tests
UNBIASED_LN = (
    "unbiased variance? LayerNorm divides the squared deviations by d, not d - 1 "
    "(x.var() is unbiased by default: pass correction=0)"
)
EPS_OUTSIDE = "eps added outside the square root? It goes inside: (x - mean) / sqrt(var + eps)"
EPS_IGNORED = "eps ignored? It is added to the variance before the root"
EPS_DEFAULT = "used eps = 1e-5 whatever the argument? Use the eps that was passed"
LN_WHOLE = "normalised over the whole tensor? Take the mean and variance over the last dim only (dim=-1)"
LN_FIRST_DIM = (
    "normalised over the first dim? LayerNorm takes the mean and variance over the last dim (dim=-1)"
)
AFFINE_IGNORED = "the weight and bias were ignored? Finish with * weight + bias"
BIAS_IGNORED = "the bias was ignored? Finish with * weight + bias"
BIAS_FIRST = "the bias was added before the weight? Finish with * weight + bias, in that order"
# the same wording wherever the one-pass variance can show: the tests of large offsets, and every
# other float32 comparison, whose tolerance it misses on ordinary inputs too (mean 1, spread 0.05)
ONE_PASS_VAR = (
    "variance computed in one pass, as mean(x^2) - mean(x)^2? In float32 the two terms cancel: digits are "
    "lost whenever the mean is not small against the spread (all of them for a mean of 1e4 and a spread "
    "of 1). Subtract the mean first, then average the squared deviations"
)
NAN_LARGE_OFFSET = (
    "NaN values for inputs of mean 1e4 and standard deviation 1: a negative variance? mean(x^2) - mean(x)^2 "
    "cancels in float32 (and can come out negative): subtract the mean first, then average the squares"
)
RETURNED_FLOAT32 = "returned float32? Cast the result back to the input's dtype at the end"
HALF_COMPUTE = (
    "computed in half precision? Convert float16 / bfloat16 inputs (and weight and bias) to float32, "
    "compute there, and cast the result back to x's dtype once, at the end"
)
WEIGHT_IN_HALF = (
    "weight and bias rounded to the half dtype? Convert them to float32, like x, not x to their dtype "
    "or them to x's"
)
CONSTANT_ROW_NAN = "a constant row has variance 0: add eps to the variance before the square root"

BN_NORMALISED_UNBIASED = (
    "normalised with the unbiased variance? The batch is normalised with the biased one (divide by n); "
    "only the running variance uses n - 1"
)
BN_PER_ROW = (
    "normalised each row over its features? That is LayerNorm: BatchNorm averages each channel over "
    "the batch (dim 0)"
)
BN_CHANNELS_LAST = (
    "statistics per position of the last dim? For (N, C, L) input the channels are dim 1: average each "
    "channel over dims 0 and 2"
)
BN_BATCH_DIM_ONLY = (
    "statistics over the batch dim only? For (N, C, L) input average each channel over dims 0 and 2 "
    "(N * L values), not over dim 0 alone"
)
RUNNING_IN_TRAINING = (
    "running statistics used in training? With training=True normalise with the batch's own mean and variance"
)
EVAL_BATCH_STATS = (
    "batch statistics in eval mode? With training=False normalise with running_mean and running_var"
)
EVAL_UPDATES = "running statistics updated in eval mode? With training=False return them as they were"
BESSEL_BATCH_SIZE = (
    "unbiased variance with n = N? For (N, C, L) inputs each channel's batch statistics are over N * L "
    "values: the running variance tracks batch_var * n / (n - 1) with n = N * L"
)
RUNNING_VAR_BIASED = (
    "running variance updated with the biased batch variance? It tracks the unbiased one: "
    "batch_var * n / (n - 1)"
)
MOMENTUM_SWAPPED = (
    "momentum applied the other way round? new = (1 - momentum) * running + momentum * batch_stat"
)
MOMENTUM_FIXED = "used momentum = 0.1 whatever the argument? Use the momentum that was passed"
NOT_UPDATED = "running statistics not updated? In training they move towards the batch's"
ONE_VALUE_HINT = "with n = N * L = 1 the unbiased variance divides by n - 1 = 0: raise ValueError instead"
TUPLE = "batch_norm must return a tuple (y, new_running_mean, new_running_var)"
LN_GRADIENT_HINT = (
    "the output is right but a gradient is not: use differentiable tensor operations only (no .item(), "
    ".numpy(), .detach() or in-place writes)"
)
BN_GRADIENT_HINT = (
    "the output is right but a gradient is not: in training the batch mean and variance depend on x, so the "
    "gradient must flow through them too (compute them outside torch.no_grad(), without .detach())"
)

# A half-precision result computed in float32 and rounded once to x's dtype is within half a unit
# in the last place of the exact one (a relative error under the dtype's epsilon), plus float32's
# own error near zero: rtol = eps(dtype), atol = 1e-5. Measured over 100 seeds of test_layer_norm_dtypes'
# inputs: the reference stays inside with room to spare; computing in float16 is off by up to 6e-3
# beyond that, in bfloat16 by up to 5e-2; rounding float32 weights to the half dtype first, 1e-3
# (float16) and 7e-3 (bfloat16).
HALF_TOL = {torch.float16: {"rtol": 2.0**-10, "atol": 1e-5}, torch.bfloat16: {"rtol": 2.0**-7, "atol": 1e-5}}

# Inputs of mean 1e4 and standard deviation 1 in float32: the float32 numbers near 1e4 are 1e-3
# apart, so x itself and its mean are only known to about 5e-4, which the division by a standard
# deviation of 1 leaves as it is. torch's own float32 layer_norm is 1.6e-3 off the float64 result
# here, and so is any correct float32 computation; mean(x^2) - mean(x)^2 is off by the whole
# signal (or NaN). Allow 1e-2.
OFFSET_ATOL = 1e-2


def randn(rng, *shape, dtype=torch.float32, scale=1.0, offset=0.0):
    x = rng.standard_normal(shape).astype(np.float32) * np.float32(scale) + np.float32(offset)
    return torch.from_numpy(x).to(dtype)


def affine(rng, d, dtype=torch.float32):
    """A trained-looking weight (around 1, some negative) and bias (around 0)."""
    w = 1.0 + 0.5 * rng.standard_normal(d).astype(np.float32)
    b = 0.5 * rng.standard_normal(d).astype(np.float32)
    return torch.from_numpy(w).to(dtype), torch.from_numpy(b).to(dtype)


def compute_dtype(x):
    return torch.float32 if x.dtype in HALF else x.dtype


# ---------------------------------------------------------------------------- LayerNorm helpers


def ln_exact(x, w, b, eps=1e-5):
    """torch's layer_norm in float64 on the same inputs, rounded once to x's dtype: the oracle."""
    return F.layer_norm(x.double(), (x.shape[-1],), w.double(), b.double(), eps).to(x.dtype)


def ln_formula(
    x, w, b, eps, *, dims=(-1,), unbiased=False, inside=True, naive=False, clamp=True, affine_mode="wb"
):
    """LayerNorm and its likely mistakes, computed as a submission would (float32 for half inputs)."""
    dtype = compute_dtype(x)
    xf, wf, bf = x.to(dtype), w.to(dtype), b.to(dtype)
    mean = xf.mean(dim=dims, keepdim=True)
    if naive:  # one pass; clamped at 0 unless told (unclamped, a negative variance gives NaN)
        var = (xf * xf).mean(dim=dims, keepdim=True) - mean * mean
        var = var.clamp_min(0) if clamp else var
    else:
        n = int(np.prod([x.shape[d] for d in dims]))
        var = (xf - mean).pow(2).sum(dim=dims, keepdim=True) / (n - 1 if unbiased and n > 1 else n)
    y = (xf - mean) / (var + eps).sqrt() if inside else (xf - mean) / (var.sqrt() + eps)
    if affine_mode == "wb":
        y = y * wf + bf
    elif affine_mode == "w":
        y = y * wf
    elif affine_mode == "bw":
        y = (y + bf) * wf
    return y.to(x.dtype)


def ln_mistakes(x, w, b, eps=1e-5):
    """What the likely LayerNorm mistakes return for these inputs, to name the one made."""
    found = {
        UNBIASED_LN: ln_formula(x, w, b, eps, unbiased=True),
        EPS_OUTSIDE: ln_formula(x, w, b, eps, inside=False),
        AFFINE_IGNORED: ln_formula(x, w, b, eps, affine_mode=""),
        BIAS_IGNORED: ln_formula(x, w, b, eps, affine_mode="w"),
        BIAS_FIRST: ln_formula(x, w, b, eps, affine_mode="bw"),
        EPS_IGNORED: ln_formula(x, w, b, 0.0),
        ONE_PASS_VAR: ln_formula(x, w, b, eps, naive=True),
    }
    if eps != 1e-5:
        found[EPS_DEFAULT] = ln_formula(x, w, b, 1e-5)
    if x.dim() >= 2:
        found[LN_WHOLE] = ln_formula(x, w, b, eps, dims=tuple(range(x.dim())))
        found[LN_FIRST_DIM] = ln_formula(x, w, b, eps, dims=(0,))
    if x.dtype in HALF:
        found[RETURNED_FLOAT32] = ln_formula(x.float(), w, b, eps)
        xh = x
        mean = xh.mean(-1, keepdim=True)
        var = (xh - mean).pow(2).mean(-1, keepdim=True)
        found[HALF_COMPUTE] = (xh - mean) * torch.rsqrt(var + eps) * w.to(x.dtype) + b.to(x.dtype)
        found[WEIGHT_IN_HALF] = ln_formula(x, w.to(x.dtype), b.to(x.dtype), eps)
    return found


def nan_hint(got, one_pass):
    """The hint for NaN values on inputs of mean 1e4: the one-pass variance's when the output is
    what it gives unclamped (NaN where its variance is negative), else a question."""
    matched = compare(got, one_pass, rtol=0.0, atol=OFFSET_ATOL, equal_nan=True) is None
    return ONE_PASS_VAR if matched else NAN_LARGE_OFFSET


def check_layer_norm(got, x, w, b, eps=1e-5, *, what="layer_norm(x, weight, bias)", extra=None, **tol):
    expect(isinstance(got, torch.Tensor), "layer_norm must return a torch.Tensor")
    assert_close(
        got,
        ln_exact(x, w, b, eps),
        what=what,
        misconceptions={**(extra or {}), **ln_mistakes(x, w, b, eps)},
        **tol,
    )


# ---------------------------------------------------------------------------- LayerNorm

LEADS = [
    pytest.param((), id="a-single-vector"),
    pytest.param(("rows",), id="rows"),
    pytest.param(("batch", "rows"), id="batch-tokens"),
    pytest.param(("batch", "heads", "rows"), id="three-leading-dims"),
]


@pytest.mark.parametrize("lead", LEADS)
def test_layer_norm_random_shapes(submission, seed, lead):
    """layer_norm on random inputs with a trained weight and bias, for any number of leading dims."""
    sizes = {"batch": 3, "heads": 4, "rows": 9, "d": 48}

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        shape = [sizes[name] for name in lead] + [sizes["d"]]
        x = randn(rng, *shape, scale=3.0, offset=1.0)
        w, b = affine(rng, sizes["d"])
        got = submission.layer_norm(x, w, b)
        check_layer_norm(got, x, w, b, what=f"layer_norm(x, weight, bias) for x of shape {tuple(shape)}")

    used = {name: sizes[name] for name in (*lead, "d")}
    # at least 2 rows and 3 features: smaller cases make different mistakes look alike
    floor = {"batch": 1, "heads": 1, "rows": 2, "d": 3}
    shrink(check, used, seed=seed % 1000, minimum={name: floor[name] for name in used}, budget=40)


@pytest.mark.parametrize("eps", [pytest.param(1e-5, id="eps-1e-5"), pytest.param(1e-3, id="eps-1e-3")])
def test_layer_norm_eps(submission, rng, eps):
    """Rows of tiny spread (standard deviation 1e-4 to 1e-1), where eps decides the result."""
    scales = torch.tensor([1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]).unsqueeze(-1)  # (7, 1)
    x = randn(rng, 7, 32) * scales  # no offset: float32 resolves deviations of 1e-4 around 0, not around 1
    w, b = affine(rng, 32)
    check_layer_norm(
        submission.layer_norm(x, w, b, eps=eps),
        x,
        w,
        b,
        eps,
        what=f"layer_norm(x, weight, bias, eps={eps:g})",
    )


def test_layer_norm_constant_rows(submission, rng):
    """Constant rows among ordinary rows: their output is the bias, never NaN."""
    x = randn(rng, 6, 16, scale=2.0)
    x[1] = 3.0
    x[4] = -250.0
    w, b = affine(rng, 16)
    got = submission.layer_norm(x, w, b)
    expect(
        isinstance(got, torch.Tensor) and not torch.isnan(got).any(),
        "the output has NaN values for constant rows",
        hint=CONSTANT_ROW_NAN,
    )
    check_layer_norm(got, x, w, b)
    assert_close(got[1], b, what="the output for a constant row (the bias)")


@pytest.mark.parametrize(
    "shape", [pytest.param((32, 256), id="32x256"), pytest.param((2, 8, 1024), id="2x8x1024")]
)
def test_layer_norm_large_offset(submission, rng, shape):
    """Inputs of mean 1e4 and standard deviation 1 in float32: the variance must not cancel."""
    x = randn(rng, *shape, offset=1e4)
    w, b = affine(rng, shape[-1])
    got = submission.layer_norm(x, w, b)
    expect(isinstance(got, torch.Tensor), "layer_norm must return a torch.Tensor")
    expect(
        not torch.isnan(got).any(),
        "the output has NaN values for inputs of mean 1e4 and standard deviation 1",
        hint=nan_hint(got, ln_formula(x, w, b, 1e-5, naive=True, clamp=False)),
    )
    check_layer_norm(got, x, w, b, rtol=0.0, atol=OFFSET_ATOL)


@pytest.mark.parametrize("dtype", dtype_params())
def test_layer_norm_dtypes(submission, rng, dtype):
    """The output has x's dtype (float32 weight and bias); float16 and bfloat16 are computed in float32."""
    x = randn(rng, 4, 16, 256, dtype=dtype, scale=2.0, offset=0.5)
    w, b = affine(rng, 256)
    got = submission.layer_norm(x, w, b)
    expect(isinstance(got, torch.Tensor), "layer_norm must return a torch.Tensor")
    name = str(dtype).removeprefix("torch.")
    expect(
        got.dtype == dtype,
        f"the output's dtype must be the input's, {name} (here with float32 weight and bias)",
        detail=f"got {got.dtype}",
        hint="compute in float32 and cast the result back with .to(x.dtype) as the last step",
    )
    check_layer_norm(got, x, w, b, **HALF_TOL.get(dtype, {}))


def test_layer_norm_float64(submission, rng):
    """A float64 input is computed and returned in float64, with float64's precision."""
    x = randn(rng, 3, 40).double() * torch.rand(3, 40, dtype=torch.float64) + 2.0  # not float32 values
    w, b = (t.double() for t in affine(rng, 40))
    got = submission.layer_norm(x, w, b)
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float64,
        "a float64 input must give a float64 output",
        hint="only float16 and bfloat16 inputs are converted to float32",
    )
    check_layer_norm(
        got,
        x,
        w,
        b,
        rtol=1e-10,
        atol=1e-12,
        extra={
            "computed in float32? a float64 input keeps float64's precision: convert only float16 and "
            "bfloat16 inputs to float32": ln_formula(x.float(), w, b, 1e-5).double()
        },
    )


def test_layer_norm_float16_large_values(submission, rng):
    """float16 rows with outlier features of 300: their squared deviations exceed 65504, float16's largest."""
    x = randn(rng, 8, 64)
    x[:, 5] = 300.0
    x[::2, 17] = -150.0
    x = x.half()
    w, b = affine(rng, 64)
    got = submission.layer_norm(x, w, b)
    expect(isinstance(got, torch.Tensor), "layer_norm must return a torch.Tensor")
    expect(
        bool(torch.isfinite(got).all()),
        "the output has non-finite values for float16 rows with features of 300",
        hint=HALF_COMPUTE,
    )
    check_layer_norm(got, x, w, b, **HALF_TOL[torch.float16])


def torch_layer_norm(x, weight, bias, eps=1e-5):
    """The oracle of the gradient checks: torch's own layer_norm, with autograd."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


@pytest.mark.parametrize(
    "shape, eps",
    [pytest.param((6, 20), 1e-5, id="rows"), pytest.param((2, 5, 32), 1e-3, id="batch-tokens-eps-1e-3")],
)
def test_layer_norm_gradients(submission, rng, shape, eps):
    """Backward through layer_norm: the gradients of x, weight and bias match torch's."""
    x = randn(rng, *shape, scale=2.0, offset=1.0)
    w, b = affine(rng, shape[-1])
    g = randn(rng, *shape)
    check_layer_norm(submission.layer_norm(x, w, b, eps=eps), x, w, b, eps)  # the value first
    assert_gradients_close(
        submission.layer_norm,
        torch_layer_norm,
        (x.requires_grad_(), w.requires_grad_(), b.requires_grad_()),
        {"eps": eps},
        grad_output=g,
        names=("x", "weight", "bias"),
        rtol=1e-5,
        atol=1e-5,
        hint=LN_GRADIENT_HINT,
    )


def test_layer_norm_inputs_unchanged(submission, rng):
    """layer_norm leaves x, weight and bias as they were: the caller still needs x (the residual stream)."""
    x = randn(rng, 3, 5, 32, scale=2.0, offset=1.0)
    w, b = affine(rng, 32)
    # only the inputs here: the output on such inputs is checked in test_layer_norm_random_shapes
    got = call_unchanged(
        submission.layer_norm,
        x,
        w,
        b,
        names=("x", "weight", "bias"),
        what="layer_norm",
        hint="compute new tensors (x - mean, not x -= mean; x.float() is x itself when x is float32)",
    )
    expect(isinstance(got, torch.Tensor), "layer_norm must return a torch.Tensor")


# ---------------------------------------------------------------------------- BatchNorm helpers


def stats_dims(x):
    return (0,) if x.dim() == 2 else (0, 2)


def channel_view(x):
    return (1, -1) if x.dim() == 2 else (1, -1, 1)


def bn_exact(x, rm, rv, w, b, training, momentum=0.1, eps=1e-5):
    """torch's batch_norm in float64 on copies, rounded once: (y in x's dtype, the running stats
    it leaves in their dtype). The oracle."""
    m, v = rm.double().clone(), rv.double().clone()
    y = F.batch_norm(x.double(), m, v, w.double(), b.double(), training=training, momentum=momentum, eps=eps)
    return y.to(x.dtype), m.to(rm.dtype), v.to(rv.dtype)


def bn_formula(
    x,
    rm,
    rv,
    w,
    b,
    training,
    momentum=0.1,
    eps=1e-5,
    *,
    dims=None,
    norm_unbiased=False,
    running_biased=False,
    swapped=False,
    use_running=None,
    update=None,
    naive=False,
    clamp=True,
    bessel_n=None,
    inside=True,
):
    """BatchNorm and its likely mistakes, as a submission would compute them: (y, mean, var)."""
    dtype = compute_dtype(x)
    xf = x.to(dtype)
    use_running = (not training) if use_running is None else use_running
    update = training if update is None else update
    if dims is None:
        dims = stats_dims(x)
    if dims == (0, 1):  # channels last: statistics per position of the last dim
        view = (1, 1, -1)
    elif dims == (0,) and x.dim() == 3:  # statistics per (channel, position)
        view = (1, *x.shape[1:])
    elif dims[0] != 0:  # per example: LayerNorm
        view = (x.shape[0],) + (1,) * (x.dim() - 1)
    else:
        view = channel_view(x)
    n = int(np.prod([x.shape[d] for d in dims]))
    mean = xf.mean(dim=dims)
    if naive:  # one pass; clamped at 0 unless told (unclamped, a negative variance gives NaN)
        biased = (xf * xf).mean(dim=dims) - mean * mean
        biased = biased.clamp_min(0) if clamp else biased
    else:
        biased = (xf - mean.reshape(view)).pow(2).mean(dim=dims)
    if bessel_n is None:
        unbiased = biased * n / max(n - 1, 1)
    else:  # a mistake's count in the Bessel correction (N for N * L); with N = 1, n / (n - 1) is infinite
        unbiased = biased * (bessel_n / (bessel_n - 1) if bessel_n > 1 else float("inf"))
    if use_running:
        nm, nv = rm.to(dtype).reshape(channel_view(x)), rv.to(dtype).reshape(channel_view(x))
    else:
        nm, nv = mean.reshape(view), (unbiased if norm_unbiased else biased).reshape(view)
    y = (xf - nm) / (nv + eps).sqrt() if inside else (xf - nm) / (nv.sqrt() + eps)
    per_channel = (1, 1, -1) if dims == (0, 1) else channel_view(x)  # channels last: weight along L too
    y = (y * w.to(dtype).reshape(per_channel) + b.to(dtype).reshape(per_channel)).to(x.dtype)
    if not update or mean.shape != rm.shape:
        return y, rm.clone(), rv.clone()
    tracked = biased if running_biased else unbiased
    keep, new = (momentum, 1 - momentum) if swapped else (1 - momentum, momentum)
    new_mean = (keep * rm + new * mean.to(rm.dtype)).to(rm.dtype)
    new_var = (keep * rv + new * tracked.to(rv.dtype)).to(rv.dtype)
    return y, new_mean, new_var


def bn_mistakes(x, rm, rv, w, b, training, momentum=0.1, eps=1e-5):
    """Likely mistakes, as three dicts (for y, the new running mean, the new running variance)."""
    args = (x, rm, rv, w, b, training, momentum, eps)
    ys, means, variances = {}, {}, {}

    def add(label, out, *, y=True, stats=True):
        if y:
            ys[label] = out[0]
        if stats:
            means[label], variances[label] = out[1], out[2]

    if training:
        add(BN_NORMALISED_UNBIASED, bn_formula(*args, norm_unbiased=True), stats=False)
        add(BN_PER_ROW, bn_formula(*args, dims=tuple(range(1, x.dim()))), stats=False)
        add(RUNNING_IN_TRAINING, bn_formula(*args, use_running=True), stats=False)
        add(EPS_OUTSIDE, bn_formula(*args, inside=False), stats=False)
        if x.dim() == 3 and x.shape[2] > 1:  # with L = 1, n = N is right
            add(BESSEL_BATCH_SIZE, bn_formula(*args, bessel_n=x.shape[0]), y=False)
        add(RUNNING_VAR_BIASED, bn_formula(*args, running_biased=True), y=False)
        add(MOMENTUM_SWAPPED, bn_formula(*args, swapped=True), y=False)
        add(NOT_UPDATED, bn_formula(*args, update=False), y=False)
        if momentum != 0.1:
            add(MOMENTUM_FIXED, bn_formula(x, rm, rv, w, b, training, 0.1, eps), y=False)
        if x.dim() == 3:
            add(BN_BATCH_DIM_ONLY, bn_formula(*args, dims=(0,)), stats=False)
            if x.shape[1] == x.shape[2]:
                add(BN_CHANNELS_LAST, bn_formula(*args, dims=(0, 1)))
        add(ONE_PASS_VAR, bn_formula(*args, naive=True))
    else:
        add(EVAL_BATCH_STATS, bn_formula(*args, use_running=False, update=False), stats=False)
        add(EVAL_UPDATES, bn_formula(*args, update=True), y=False)
        add(EPS_OUTSIDE, bn_formula(*args, inside=False), stats=False)
    add(
        AFFINE_IGNORED, bn_formula(x, rm, rv, torch.ones_like(w), torch.zeros_like(b), *args[5:]), stats=False
    )
    return ys, means, variances


def check_batch_norm(got, x, rm, rv, w, b, training, momentum=0.1, eps=1e-5, *, extra=None, **tol):
    """The tuple (y, new_running_mean, new_running_var) against torch's float64 batch_norm, each
    part with the mistakes it can show."""
    expect(isinstance(got, tuple) and len(got) == 3, TUPLE)
    want = bn_exact(x, rm, rv, w, b, training, momentum, eps)
    ys, means, variances = bn_mistakes(x, rm, rv, w, b, training, momentum, eps)
    mode = "training" if training else "eval"
    assert_close(got[0], want[0], what=f"y ({mode} mode)", misconceptions={**(extra or {}), **ys}, **tol)
    assert_close(got[1], want[1], what=f"the new running_mean ({mode} mode)", misconceptions=means)
    assert_close(got[2], want[2], what=f"the new running_var ({mode} mode)", misconceptions=variances)


def bn_inputs(rng, shape, dtype=torch.float32, *, scale=2.0, offset=1.0):
    """x, and trained-looking running statistics, weight and bias for its C = shape[1] channels."""
    c = shape[1]
    x = randn(rng, *shape, dtype=dtype, scale=scale, offset=offset)
    rm = torch.from_numpy(rng.standard_normal(c).astype(np.float32))
    rv = torch.from_numpy(rng.uniform(0.5, 3.0, c).astype(np.float32))
    w, b = affine(rng, c)
    return x, rm, rv, w, b


# ---------------------------------------------------------------------------- BatchNorm

BN_SHAPES = [
    pytest.param((16, 5), id="N16-C5"),
    pytest.param((2, 7), id="N2-C7"),
    pytest.param((8, 3, 7), id="N8-C3-L7"),
    pytest.param((5, 4, 4), id="N5-C4-L4"),
    pytest.param((2, 6, 1), id="N2-C6-L1"),
]


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_training(submission, rng, shape):
    """Training mode on (N, C) and (N, C, L) inputs with trained running statistics, weight and bias."""
    x, rm, rv, w, b = bn_inputs(rng, shape)
    got = submission.batch_norm(x, rm, rv, w, b, training=True)
    check_batch_norm(got, x, rm, rv, w, b, True)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((16, 5), id="N16-C5"),
        pytest.param((8, 3, 7), id="N8-C3-L7"),
        pytest.param((1, 5), id="N1-C5"),
    ],
)
def test_batch_norm_eval(submission, rng, shape):
    """Eval mode normalises with the running statistics (a batch of one too) and leaves them as they were."""
    x, rm, rv, w, b = bn_inputs(rng, shape)
    got = submission.batch_norm(x, rm, rv, w, b, training=False)
    check_batch_norm(got, x, rm, rv, w, b, False)


def test_batch_norm_random_shapes(submission, seed):
    """Training then eval on random (N, C, L) sizes: eval uses the running statistics training left."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        x, rm, rv, w, b = bn_inputs(rng, (sizes["N"], sizes["C"], sizes["L"]))
        got = submission.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2)
        check_batch_norm(got, x, rm, rv, w, b, True, 0.2)
        _, rm2, rv2 = bn_exact(x, rm, rv, w, b, True, 0.2)
        x2 = randn(rng, 3, sizes["C"], sizes["L"], scale=2.0, offset=1.0)
        check_batch_norm(submission.batch_norm(x2, rm2, rv2, w, b, training=False), x2, rm2, rv2, w, b, False)

    # at least 2 x 2 values per channel and 2 channels: smaller cases make mistakes look alike
    shrink(check, {"N": 6, "C": 5, "L": 9}, seed=seed % 1000, minimum={"N": 2, "C": 2, "L": 2}, budget=40)


@pytest.mark.parametrize(
    "momentum, eps",
    [
        pytest.param(0.3, 1e-5, id="momentum-0.3"),
        pytest.param(0.01, 1e-3, id="momentum-0.01-eps-1e-3"),
        pytest.param(1.0, 1e-5, id="momentum-1"),
    ],
)
def test_batch_norm_momentum_and_eps(submission, rng, momentum, eps):
    """Other momentum and eps values: the running statistics move by momentum, eps goes inside the root."""
    x, rm, rv, w, b = bn_inputs(rng, (12, 6), scale=0.05)  # small spread, so that eps shows
    got = submission.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum, eps=eps)
    extra = {}
    if eps != 1e-5:
        extra[EPS_DEFAULT] = bn_formula(x, rm, rv, w, b, True, momentum, 1e-5)[0]
    check_batch_norm(got, x, rm, rv, w, b, True, momentum, eps, extra=extra)


@pytest.mark.parametrize("shape", [pytest.param((1, 4), id="N1-C4"), pytest.param((1, 4, 1), id="N1-C4-L1")])
def test_batch_norm_one_value_per_channel_raises(submission, shape):
    """Training on one value per channel (N * L == 1) raises ValueError, as PyTorch does."""
    x = torch.arange(4, dtype=torch.float32).reshape(shape)
    try:
        submission.batch_norm(x, torch.zeros(4), torch.ones(4), torch.ones(4), torch.zeros(4), training=True)
    except ValueError:
        return
    expect(
        False,
        "batch_norm(training=True) with one value per channel must raise ValueError",
        hint=ONE_VALUE_HINT,
    )


def test_batch_norm_one_sequence_in_training(submission, rng):
    """A batch of one sequence, shape (1, C, L) with L = 10, trains fine: each channel has 10 values."""
    x, rm, rv, w, b = bn_inputs(rng, (1, 3, 10))
    try:
        got = submission.batch_norm(x, rm, rv, w, b, training=True)
    except ValueError:
        expect(
            False,
            "batch_norm(training=True) raised ValueError on (1, C, L) with L > 1 (L values per channel)",
            hint="raise only when N * L == 1: a batch of one sequence has L values per channel",
        )
    except ZeroDivisionError:  # n / (n - 1) with n = N = 1
        expect(
            False,
            "batch_norm(training=True) divided by zero on (1, C, L) with L = 10 (10 values per channel)",
            hint=BESSEL_BATCH_SIZE,
        )
    check_batch_norm(got, x, rm, rv, w, b, True)


@pytest.mark.parametrize(
    "shape", [pytest.param((64, 8), id="N64-C8"), pytest.param((16, 4, 32), id="N16-C4-L32")]
)
def test_batch_norm_large_offset(submission, rng, shape):
    """Training on inputs of mean 1e4 and standard deviation 1 in float32: the variance must not cancel."""
    x, rm, rv, w, b = bn_inputs(rng, shape, scale=1.0, offset=1e4)
    got = submission.batch_norm(x, rm, rv, w, b, training=True)
    expect(isinstance(got, tuple) and len(got) == 3, TUPLE)
    expect(isinstance(got[0], torch.Tensor), "y must be a torch.Tensor")
    expect(
        not torch.isnan(got[0]).any(),
        "the output has NaN values for inputs of mean 1e4 and standard deviation 1",
        hint=nan_hint(got[0], bn_formula(x, rm, rv, w, b, True, naive=True, clamp=False)[0]),
    )
    check_batch_norm(got, x, rm, rv, w, b, True, rtol=0.0, atol=OFFSET_ATOL)


@pytest.mark.parametrize("training", [pytest.param(True, id="training"), pytest.param(False, id="eval")])
@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
def test_batch_norm_half_precision(submission, rng, dtype, training):
    """Half-precision x, float32 running statistics, weight and bias: y in x's dtype, statistics float32."""
    x, rm, rv, w, b = bn_inputs(rng, (32, 6, 16), dtype=dtype)
    got = submission.batch_norm(x, rm, rv, w, b, training=training)
    expect(isinstance(got, tuple) and len(got) == 3, TUPLE)
    name = str(dtype).removeprefix("torch.")
    expect(
        isinstance(got[0], torch.Tensor) and got[0].dtype == dtype,
        f"y must have the input's dtype, {name}",
        hint="compute in float32 and cast y back with .to(x.dtype) as the last step",
    )
    expect(
        all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in got[1:]),
        "the new running statistics must keep the dtype of the running statistics given (float32)",
        hint="compute the running update in float32; only y goes back to x's dtype",
    )
    xh = x
    dims = stats_dims(x)
    if training:
        mean, var = xh.mean(dims), (xh - xh.mean(dims).reshape(1, -1, 1)).pow(2).mean(dims)
    else:
        mean, var = rm.to(dtype), rv.to(dtype)
    half = (xh - mean.reshape(1, -1, 1)) * torch.rsqrt(var.reshape(1, -1, 1) + 1e-5)
    half = half * w.to(dtype).reshape(1, -1, 1) + b.to(dtype).reshape(1, -1, 1)
    check_batch_norm(got, x, rm, rv, w, b, training, extra={HALF_COMPUTE: half}, **HALF_TOL[dtype])


def torch_batch_norm(x, running_mean, running_var, weight, bias, training, momentum=0.1, eps=1e-5):
    """The oracle of the gradient checks: torch's batch_norm, with the running statistics returned."""
    m, v = running_mean.clone(), running_var.clone()
    y = F.batch_norm(x, m, v, weight, bias, training=training, momentum=momentum, eps=eps)
    return y, m, v


@pytest.mark.parametrize(
    "shape", [pytest.param((16, 5), id="N16-C5"), pytest.param((6, 3, 7), id="N6-C3-L7")]
)
def test_batch_norm_gradients(submission, rng, shape):
    """Backward through batch_norm in training: the gradients of x, weight and bias match torch's."""
    x, rm, rv, w, b = bn_inputs(rng, shape)
    g = randn(rng, *shape)
    check_batch_norm(submission.batch_norm(x, rm, rv, w, b, training=True), x, rm, rv, w, b, True)
    assert_gradients_close(
        submission.batch_norm,
        torch_batch_norm,
        (x.requires_grad_(), rm, rv, w.requires_grad_(), b.requires_grad_()),
        {"training": True},
        grad_output=[g],
        names=("x", "weight", "bias"),
        rtol=1e-5,
        atol=1e-5,
        hint=BN_GRADIENT_HINT,
    )


@pytest.mark.parametrize("training", [pytest.param(True, id="training"), pytest.param(False, id="eval")])
def test_batch_norm_inputs_unchanged(submission, rng, training):
    """batch_norm leaves x, the running statistics, weight and bias as they were: it returns new ones."""
    x, rm, rv, w, b = bn_inputs(rng, (8, 4, 5))
    # only the inputs here: the outputs on such inputs are checked in test_batch_norm_training and
    # test_batch_norm_eval (N8-C3-L7)
    got = call_unchanged(
        submission.batch_norm,
        x,
        rm,
        rv,
        w,
        b,
        names=("x", "running_mean", "running_var", "weight", "bias"),
        what="batch_norm",
        hint="return the new running statistics as new tensors ((1 - momentum) * running_mean + ...), never "
        "update running_mean or running_var in place as torch.nn.functional.batch_norm does",
        training=training,
    )
    expect(isinstance(got, tuple) and len(got) == 3, TUPLE)
