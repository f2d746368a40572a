"""Hidden tests for ddpm-step: the schedule, q_sample and ddpm_step against an independent float64
oracle written here (numpy), at t = 0, t = T - 1 and mixed batched t, for several shapes, float32
and float64 inputs and both variances; ValueErrors; arguments left unchanged; one step at t = 0
with the true noise recovering x0; and a whole reverse chain on Gaussian toy data.

The oracle is this file's own code, not the reference solution: diffusers (whose DDPMScheduler
conventions are matched: 0-based t, add_noise, step with clip_sample=False and the epsilon form)
is not installed.
"""

import numpy as np
import pytest
import torch

from grader.testing import RemoteError, assert_close, call_unchanged, expect, shrink

# one wording per mistake, the same as in the public tests
SQRT_MISSING = "the noise was weighted by 1 - alpha_bar_t (and x0 by alpha_bar_t): take their square roots"
MEAN_ALPHA_BAR = "the mean divided by sqrt(alpha_bar_t): it divides by sqrt(alpha_t), the one-step alpha"
VARIANCE_LARGE = "the noise was scaled by sqrt(beta_t) where fixed_small asks for sqrt(beta_tilde_t)"
VARIANCE_SMALL = "the noise was scaled by sqrt(beta_tilde_t) where fixed_large asks for sqrt(beta_t)"
VARIANCE_AS_STD = "the noise was multiplied by the variance itself: multiply it by its square root, sigma_t"
NOISE_AT_0 = "noise was added at t = 0: the last step returns its mean"
ONE_BASED_T = (
    "the schedule was read at t - 1 (1-based timesteps): t indexes betas[t] and alpha_bar[t] directly"
)
FLOAT32_SCHEDULE = (
    "a float64 input came out with about float32's precision: compute the schedule and the coefficients "
    "in float64"
)
EPS_COEF_SQRT = (
    "the noise prediction was weighted by beta_t / (1 - alpha_bar_t): the weight is "
    "beta_t / sqrt(1 - alpha_bar_t)"
)
BROADCAST = (
    "the output has the input's shape for inputs of shape (B, D), but not for the same values with "
    "another number of dims after the batch (a wrong shape, or an error): reshape each (B,) coefficient "
    "to (B, 1, ..., 1), one 1 per dim after the batch, so that it broadcasts over the whole sample"
)
FLOAT32_COEFFICIENTS = (
    "the output is right to float32's usual tolerance, but not to this test's tighter one near t = 0, "
    "where 1 - alpha_bar_t is about 1e-4: compute the coefficients from the float64 schedule in "
    "float64, then cast them to x's dtype"
)

T_STD = 1000
# float32 inputs near t = 0: a coefficient computed in float32 (1 - alpha_bar_t from a float32
# alpha_bar_t) is off by about 1e-4 relative there, which this tolerance sees (a correct float32
# step stays at about a tenth of it, measured over many seeds); the lesson states it
TIGHT_FLOAT32 = {"rtol": 5e-6, "atol": 2e-8}
SHAPE_NAMES = {1: "(B,)", 2: "(B, D)", 3: "(B, C, L)", 4: "(B, C, H, W)"}


# ---------------------------------------------------------------------------- the oracle (numpy float64)


def np_schedule(betas, shift=0):
    """(beta, alpha_bar, alpha_bar_prev) as float64 arrays, read at index t + shift by the caller."""
    b = np.asarray(betas.detach().cpu().numpy(), dtype=np.float64)
    ab = np.cumprod(1.0 - b)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    return b, ab, ab_prev


def per_sample(values, ndim):
    return values.reshape(-1, *([1] * (ndim - 1)))


def q_oracle(x0, t, noise, betas, *, shift=0, roots=True, dtype32=False):
    """sqrt(ab_t) x0 + sqrt(1 - ab_t) noise in float64, returned in x0's dtype; the keyword
    arguments give the outputs of the usual mistakes."""
    b, ab, _ = np_schedule(betas)
    if dtype32:
        ab = np.cumprod(1.0 - b.astype(np.float32), dtype=np.float32).astype(np.float64)
    idx = t.numpy() + shift
    a = ab[idx]
    ca, cn = (np.sqrt(a), np.sqrt(1.0 - a)) if roots else (a, 1.0 - a)
    x = x0.double().numpy()
    n = noise.double().numpy()
    out = per_sample(ca, x.ndim) * x + per_sample(cn, x.ndim) * n
    return torch.from_numpy(out).to(x0.dtype)


def step_oracle(
    x_t,
    t,
    eps,
    noise,
    betas,
    variance="fixed_small",
    *,
    shift=0,
    divide_by="alpha",
    noise_at_0=False,
    std=True,
    eps_root=True,
    dtype32=False,
):
    """The reverse step in float64, returned in x_t's dtype; the keyword arguments give the outputs
    of the usual mistakes."""
    b, ab, ab_prev = np_schedule(betas)
    if dtype32:
        b32 = b.astype(np.float32)
        ab = np.cumprod(1.0 - b32, dtype=np.float32).astype(np.float64)
        ab_prev = np.concatenate([[1.0], ab[:-1]])
        b = b32.astype(np.float64)
    idx = t.numpy() + shift
    beta, a_bar, a_bar_prev = b[idx], ab[idx], ab_prev[idx]
    tilde = (1.0 - a_bar_prev) / (1.0 - a_bar) * beta
    var = tilde if variance == "fixed_small" else beta
    sigma = np.sqrt(var) if std else var
    if not noise_at_0:
        sigma = np.where(t.numpy() > 0, sigma, 0.0)
    div = np.sqrt(1.0 - beta) if divide_by == "alpha" else np.sqrt(a_bar)
    coef = beta / np.sqrt(1.0 - a_bar) if eps_root else beta / (1.0 - a_bar)
    x, e, z = x_t.double().numpy(), eps.double().numpy(), noise.double().numpy()
    nd = x.ndim
    out = (x - per_sample(coef, nd) * e) / per_sample(div, nd) + per_sample(sigma, nd) * z
    return torch.from_numpy(out).to(x_t.dtype)


def q_mistakes(x0, t, noise, betas):
    found = {
        SQRT_MISSING: q_oracle(x0, t, noise, betas, roots=False),
        ONE_BASED_T: q_oracle(x0, t, noise, betas, shift=-1),
    }
    if x0.dtype == torch.float64:
        found[FLOAT32_SCHEDULE] = q_oracle(x0, t, noise, betas, dtype32=True)
    return found


def step_mistakes(x_t, t, eps, noise, betas, variance="fixed_small"):
    args = (x_t, t, eps, noise, betas)
    other = "fixed_large" if variance == "fixed_small" else "fixed_small"
    found = {
        VARIANCE_LARGE if variance == "fixed_small" else VARIANCE_SMALL: step_oracle(*args, other),
        MEAN_ALPHA_BAR: step_oracle(*args, variance, divide_by="alpha_bar"),
        VARIANCE_AS_STD: step_oracle(*args, variance, std=False),
        ONE_BASED_T: step_oracle(*args, variance, shift=-1),
        EPS_COEF_SQRT: step_oracle(*args, variance, eps_root=False),
    }
    if variance == "fixed_large":
        found[NOISE_AT_0] = step_oracle(*args, variance, noise_at_0=True)
    if x_t.dtype == torch.float64:
        found[FLOAT32_SCHEDULE] = step_oracle(*args, variance, dtype32=True)
    return found


# ---------------------------------------------------------------------------- calls


def _has_shape(out, shape):
    return isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(shape)


def shaped_call(what, fn, tensors):
    """fn(*tensors) on (B, ...) inputs. When they are not (B, D) and the call raises or gives
    another shape, the same call on them flattened to (B, D) tells whether only the broadcasting
    over the other dims is at fault (then the failure says so)."""
    shape = tuple(tensors[0].shape)

    def flat_works():
        flat = [x.reshape(shape[0], -1) for x in tensors]
        try:
            out = fn(*flat)
        except RemoteError:
            return False
        return _has_shape(out, flat[0].shape)

    def fail_if_broadcast():
        expect(
            not flat_works(),
            f"{what}: on inputs of shape {SHAPE_NAMES.get(len(shape), '(B, ...)')} the call raised or "
            "gave another shape, and on the same inputs as (B, D) it did not",
            hint=BROADCAST,
        )

    try:
        out = fn(*tensors)
    except RemoteError:
        if len(shape) != 2:
            fail_if_broadcast()
        raise
    if len(shape) != 2 and not _has_shape(out, shape):
        fail_if_broadcast()
    return out


# ---------------------------------------------------------------------------- inputs


def randn(rng, *shape, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape)).to(dtype)


def timesteps(rng, batch, T):
    """Random timesteps with the ends included: 0 and T - 1 come first, then random ones."""
    t = rng.integers(0, T, size=batch)
    t[0] = 0
    if batch > 1:
        t[1] = T - 1
    if batch > 2:
        t[2] = 1
    return torch.from_numpy(t).to(torch.int64)


CASES = [  # (dims after the batch, dtype)
    pytest.param((), torch.float32, id="B-float32"),
    pytest.param((8,), torch.float64, id="B-D-float64"),
    pytest.param((3, 4, 4), torch.float32, id="B-C-H-W-float32"),
    pytest.param((2, 3, 3), torch.float64, id="B-C-H-W-float64"),
]


# ---------------------------------------------------------------------------- the schedule


@pytest.mark.parametrize(
    "T, start, end",
    [
        pytest.param(1000, None, None, id="T-1000-defaults"),
        pytest.param(1, None, None, id="T-1"),
        pytest.param(50, 1e-3, 0.05, id="T-50-custom"),
    ],
)
def test_linear_betas(submission, T, start, end):
    """linear_betas for the standard and other T, beta_start and beta_end: a float64 linspace."""
    if start is None:
        got, start, end = submission.linear_betas(T), 1e-4, 0.02
    else:
        got = submission.linear_betas(T, start, end)
    expected = np.linspace(start, end, T) if T > 1 else np.array([start])
    assert_close(got, torch.from_numpy(expected), what=f"linear_betas({T}, ...)")


def test_alpha_bars_and_posterior_variance(submission):
    """alpha_bars and posterior_variance of the standard schedule (T = 1000) and of a random one."""
    rng = np.random.default_rng(7)
    for betas in (
        torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64),
        torch.from_numpy(rng.uniform(0.01, 0.3, 40)),
    ):
        b, ab, ab_prev = np_schedule(betas)
        assert_close(
            submission.alpha_bars(betas),
            torch.from_numpy(ab),
            what="alpha_bars(betas)",
            misconceptions={
                "these are the alphas 1 - beta_t: alpha_bar is their cumulative product": 1 - betas
            },
        )
        assert_close(
            submission.posterior_variance(betas),
            torch.from_numpy((1 - ab_prev) / (1 - ab) * b),
            what="posterior_variance(betas)",
            misconceptions={
                "these are the betas: beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t": betas,
            },
        )


# ---------------------------------------------------------------------------- q_sample


@pytest.mark.parametrize("inner, dtype", CASES)
def test_q_sample(submission, seed, inner, dtype):
    """q_sample with the standard schedule, mixed t (0 and T - 1 included), several shapes and dtypes."""
    betas = torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64)

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        B = sizes["batch"]
        x0, noise = randn(rng, B, *inner, dtype=dtype), randn(rng, B, *inner, dtype=dtype)
        t = timesteps(rng, B, T_STD)
        got = shaped_call(
            "q_sample(x0, t, noise, betas)",
            lambda x0, noise: submission.q_sample(x0, t, noise, betas),
            [x0, noise],
        )
        assert_close(
            got,
            q_oracle(x0, t, noise, betas),
            what="q_sample(x0, t, noise, betas)",
            misconceptions=q_mistakes(x0, t, noise, betas),
        )

    shrink(check, {"batch": 12}, seed=seed, budget=24)


@pytest.mark.parametrize("where", [pytest.param(0, id="t-0"), pytest.param(T_STD - 1, id="t-T-1")])
def test_q_sample_at_the_ends(submission, rng, where):
    """Every sample at t = 0 (almost clean), or at t = T - 1 (almost pure noise), in float64."""
    betas = torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64)
    x0, noise = randn(rng, 6, 5, dtype=torch.float64), randn(rng, 6, 5, dtype=torch.float64)
    t = torch.full((6,), where, dtype=torch.int64)
    assert_close(
        submission.q_sample(x0, t, noise, betas),
        q_oracle(x0, t, noise, betas),
        what=f"q_sample at t = {where} (float64)",
        misconceptions=q_mistakes(x0, t, noise, betas),
    )


# ---------------------------------------------------------------------------- ddpm_step


@pytest.mark.parametrize(
    "variance", [pytest.param("fixed_small", id="fixed-small"), pytest.param("fixed_large", id="fixed-large")]
)
@pytest.mark.parametrize("inner, dtype", CASES)
def test_step(submission, seed, inner, dtype, variance):
    """ddpm_step with the standard schedule, mixed t (0, 1 and T - 1 included), shapes, dtypes, variances."""
    betas = torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64)

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        B = sizes["batch"]
        x_t, eps, noise = (randn(rng, B, *inner, dtype=dtype) for _ in range(3))
        t = timesteps(rng, B, T_STD)
        what = f'ddpm_step(x_t, t, eps_pred, noise, betas, variance="{variance}")'
        got = shaped_call(
            what,
            lambda x_t, eps, noise: submission.ddpm_step(x_t, t, eps, noise, betas, variance=variance),
            [x_t, eps, noise],
        )
        assert_close(
            got,
            step_oracle(x_t, t, eps, noise, betas, variance),
            what=f'ddpm_step(x_t, t, eps_pred, noise, betas, variance="{variance}")',
            misconceptions=step_mistakes(x_t, t, eps, noise, betas, variance),
        )

    shrink(check, {"batch": 12}, seed=seed, budget=24)


def test_step_default_variance(submission, rng):
    """Without variance=..., the step uses fixed_small."""
    betas = torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64)
    x_t, eps, noise = (randn(rng, 8, 4) for _ in range(3))
    t = timesteps(rng, 8, T_STD)
    assert_close(
        submission.ddpm_step(x_t, t, eps, noise, betas),
        step_oracle(x_t, t, eps, noise, betas),
        what="ddpm_step(x_t, t, eps_pred, noise, betas)",
        misconceptions=step_mistakes(x_t, t, eps, noise, betas),
    )


def test_step_other_schedule(submission, rng):
    """A short schedule with large betas (T = 20, betas up to 0.4), every t once, both variances."""
    betas = torch.linspace(0.05, 0.4, 20, dtype=torch.float64)
    x_t, eps, noise = (randn(rng, 20, 3, dtype=torch.float64) for _ in range(3))
    t = torch.from_numpy(rng.permutation(20)).to(torch.int64)
    for variance in ("fixed_small", "fixed_large"):
        assert_close(
            submission.ddpm_step(x_t, t, eps, noise, betas, variance=variance),
            step_oracle(x_t, t, eps, noise, betas, variance),
            what=f'ddpm_step on a 20-step schedule, variance="{variance}"',
            misconceptions=step_mistakes(x_t, t, eps, noise, betas, variance),
        )


def test_step_at_t0_with_the_true_noise_recovers_x0(submission, rng):
    """Noise x0 to t = 0, then one step with the true noise as eps_pred: the result is x0 itself."""
    betas = torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64)
    x0, noise = randn(rng, 5, 6, dtype=torch.float64), randn(rng, 5, 6, dtype=torch.float64)
    t = torch.zeros(5, dtype=torch.int64)
    x_t = q_oracle(x0, t, noise, betas)
    other_noise = randn(rng, 5, 6, dtype=torch.float64)
    for variance in ("fixed_small", "fixed_large"):
        assert_close(
            submission.ddpm_step(x_t, t, noise, other_noise, betas, variance=variance),
            x0,
            what="the step at t = 0 from q_sample(x0, 0, noise) with eps_pred = noise",
            rtol=1e-9,
            atol=1e-9,
            misconceptions=step_mistakes(x_t, t, noise, other_noise, betas, variance),
        )


def test_float32_precision_near_t0(submission, rng):
    """float32 inputs at t = 0, 1, 2, where 1 - alpha_bar_t is about 1e-4: checked to 5e-6 relative.

    Small x0 and unit noise, so the noise terms (whose coefficients need 1 - alpha_bar_t) carry
    the result; a coefficient computed in float32 there is off by about 1e-4 relative.
    """
    betas = torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64)
    t = torch.tensor([0, 1, 2] * 4, dtype=torch.int64)
    x0 = (1e-3 * randn(rng, 12, 8, dtype=torch.float64)).float()
    noise, z = randn(rng, 12, 8), randn(rng, 12, 8)
    got = submission.q_sample(x0, t, noise, betas)
    expected = q_oracle(x0, t, noise, betas)
    what = "q_sample at t = 0, 1, 2 in float32"
    assert_close(got, expected, what=what, misconceptions=q_mistakes(x0, t, noise, betas))
    assert_close(got, expected, what=what, **TIGHT_FLOAT32, hint=FLOAT32_COEFFICIENTS)
    x_t = expected  # noised from x0; stepping with the true noise gives back about x0
    for variance in ("fixed_small", "fixed_large"):
        got = submission.ddpm_step(x_t, t, noise, z, betas, variance=variance)
        expected = step_oracle(x_t, t, noise, z, betas, variance)
        what = f'ddpm_step at t = 0, 1, 2 in float32, variance="{variance}"'
        assert_close(
            got, expected, what=what, misconceptions=step_mistakes(x_t, t, noise, z, betas, variance)
        )
        assert_close(got, expected, what=what, **TIGHT_FLOAT32, hint=FLOAT32_COEFFICIENTS)


# ---------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "name, t",
    [
        pytest.param("q_sample", [0, 1000], id="q_sample-t-equals-T"),
        pytest.param("q_sample", [-1, 3], id="q_sample-t-negative"),
        pytest.param("ddpm_step", [999, 1000], id="step-t-equals-T"),
        pytest.param("ddpm_step", [5, -1], id="step-t-negative"),
    ],
)
def test_t_out_of_range(submission, name, t):
    """A timestep outside 0 .. T-1 raises ValueError (t = -1 must not wrap around to T - 1)."""
    betas = torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64)
    x = torch.zeros(2, 3)
    tt = torch.tensor(t, dtype=torch.int64)
    args = (x, tt, x, betas) if name == "q_sample" else (x, tt, x, x, betas)
    try:
        getattr(submission, name)(*args)
    except ValueError:
        return
    pytest.fail(f"{name} with a timestep outside 0 .. {T_STD - 1} must raise ValueError")


def test_unknown_variance(submission):
    """variance other than "fixed_small" or "fixed_large" raises ValueError."""
    betas = torch.linspace(1e-4, 0.02, 10, dtype=torch.float64)
    x = torch.zeros(2, 3)
    for variance in ("learned", "FIXED_SMALL", "fixed-small"):
        try:
            submission.ddpm_step(x, torch.tensor([1, 2]), x, x, betas, variance=variance)
        except ValueError:
            continue
        pytest.fail(
            'ddpm_step must raise ValueError for a variance other than "fixed_small" or "fixed_large"'
        )


def test_arguments_unchanged(submission, rng):
    """q_sample and ddpm_step leave x, t, the noises and betas as they were."""
    betas = torch.linspace(1e-4, 0.02, T_STD, dtype=torch.float64)
    x, eps, noise = (randn(rng, 6, 5) for _ in range(3))  # (B, D): the shapes are checked elsewhere
    t = timesteps(rng, 6, T_STD)
    hint = (
        "compute new tensors (x_t - c * eps_pred); never -=, *= or a trailing-underscore method on arguments"
    )
    call_unchanged(
        submission.q_sample,
        x,
        t,
        noise,
        betas,
        names=("x0", "t", "noise", "betas"),
        what="q_sample",
        hint=hint,
    )
    for variance in ("fixed_small", "fixed_large"):
        call_unchanged(
            submission.ddpm_step,
            x,
            t,
            eps,
            noise,
            betas,
            names=("x_t", "t", "eps_pred", "noise", "betas"),
            what="ddpm_step",
            hint=hint,
            variance=variance,
        )


# ---------------------------------------------------------------------------- a whole chain

# Gaussian data x0 ~ N(mu, s^2) per coordinate: then x_t ~ N(sqrt(ab) mu, ab s^2 + 1 - ab), and the
# exact noise predictor is E[noise | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab).
# Sampled with that predictor from pure noise, the chain is linear-Gaussian, so its output's law is
# known exactly (computed in float64): with T = 100 and betas up to 0.2 (short, to keep the test
# cheap), fixed_small ends with 0.876 (s^2 = 0.25) and 0.940 (s^2 = 4) of the data's variance, and a
# mean within 1e-4 of mu. With N = 4000 samples the sample mean's standard error is s / sqrt(N) and
# the sample variance's sqrt(2 / N) = 2.2% of it: the bounds below (8 standard errors for the mean,
# 0.7 to 1.3 times the variance, 9 standard errors away) hold for every seed of a correct step.
CHAIN_T, CHAIN_END, CHAIN_N = 100, 0.2, 4000
MU = np.array([1.5, -0.5])
S2 = np.array([0.25, 4.0])


def test_reverse_chain_on_gaussian_data(submission, seed):
    """Sampling Gaussian toy data from noise with the exact noise predictor recovers its mean and variance."""
    betas = torch.linspace(1e-4, CHAIN_END, CHAIN_T, dtype=torch.float64)
    _, ab, _ = np_schedule(betas)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(CHAIN_N, 2, generator=gen, dtype=torch.float64)
    for step in range(CHAIN_T - 1, -1, -1):
        a = ab[step]
        eps = np.sqrt(1 - a) * (x.numpy() - np.sqrt(a) * MU) / (a * S2 + 1 - a)
        z = torch.randn(CHAIN_N, 2, generator=gen, dtype=torch.float64)
        t = torch.full((CHAIN_N,), step, dtype=torch.int64)
        x = submission.ddpm_step(x, t, torch.from_numpy(eps), z, betas)
        expect(
            isinstance(x, torch.Tensor) and tuple(x.shape) == (CHAIN_N, 2) and bool(torch.isfinite(x).all()),
            "ddpm_step must return finite values of x_t's shape at every step of the chain",
        )
    mean, var = x.numpy().mean(axis=0), x.numpy().var(axis=0)
    mean_ok = bool(np.all(np.abs(mean - MU) <= 8 * np.sqrt(S2 / CHAIN_N) + 1e-3))
    var_ok = bool(np.all((var >= 0.7 * S2) & (var <= 1.3 * S2)))
    expect(
        mean_ok and var_ok,
        "after the whole reverse chain the samples do not have the data's mean and variance (within 8 "
        "standard errors of the mean, and 0.7 to 1.3 times the variance)",
        detail=f"sample mean {mean}, variance {var}; data mean {MU}, variance {S2}",
    )
