"""Hidden tests for ppo-objective: random padded batches against an independent float64
implementation of TRL's PPOTrainer formulas (shrunk to the smallest failing case), the clip
ranges and vf_coef, advantages of one sign, exact clip boundaries, a row without response tokens,
padding holding huge numbers, inf and NaN, gradients through the runner, no gradient to the
constants, dtypes, and inputs left unchanged.

The oracle (`oracle_policy`, `oracle_value`) is written here, in float64, from the formulas of
TRL's `PPOTrainer` (ratio = exp(logprobs - old_logprobs), max of the negated clipped and plain
terms, value clipped around old_values, 0.5 * masked mean, clip fractions where the clipped term
is strictly larger, masked_mean = one mean over the masked-in tokens of the batch). It never
imports the reference solution.

Generated inputs lie on a grid of multiples of 1/256 with small magnitudes, so every difference
(logprobs - old_logprobs, vpreds - old_values, ...) is exact in float32 and in the half dtypes, and
tokens whose clip decision could flip under float32 rounding (a ratio within 0.1% of a clip bound,
a value change within 1e-3 of cliprange_value, two squared errors within 1e-3 of each other) are
moved to ratio 1 / vpreds = old_values before the test. Every decision is then the same in float32
as in float64, and the tests cannot flake."""

import math

import numpy as np
import pytest
import torch

from grader.testing import assert_close, call_unchanged, expect, local_gradients, shrink

T_, F_ = True, False
# one wording per mistake, the same as in the public tests
MIN = (
    "the loss matches min(pg_losses, pg_losses2): the loss is the negated objective, so the "
    "pessimistic term is the max"
)
INVERTED = (
    "the result matches the ratio exp(old_logprobs - logprobs): the ratio is exp(logprobs - old_logprobs)"
)
CLAMP_PRODUCT = (
    "the loss matches clamping advantages * ratio: clamp the ratio alone, then multiply by -advantages"
)
PADDED_MEAN = (
    "the result matches dividing by all B * T positions: divide by the number of True entries of the mask"
)
MASK_IGNORED = "the result matches a mean over every position, padding included: only masked-in tokens count"
SEQUENCE_MEANS = (
    "the result matches a mean of per-row means: take one mean over all masked-in tokens of the batch, "
    "so that a row weighs as many tokens as it has"
)
DEVIATION_CLIPFRAC = (
    "the clip fraction matches counting |ratio - 1| > cliprange: count the tokens where "
    "pg_losses2 > pg_losses"
)
VALUE_UNCLIPPED = "the value loss matches 0.5 * masked mean of (vpreds - returns)^2, without the clipped term"
VALUE_AROUND_RETURNS = (
    "the value loss matches clipping vpreds to returns +- cliprange_value: clip around old_values, and keep "
    "the max of both squared errors"
)
NO_HALF = "the value loss is twice the expected one: the 0.5 factor is missing"
DEFAULTS = "the result matches the default clip ranges (0.2): use the cliprange and cliprange_value given"
HALF_DTYPE = "the results have the inputs' half dtype: float16 and bfloat16 inputs give float32 results"
FLOAT32_FOR_64 = "the results are float32 for float64 inputs: float64 inputs are computed in float64"

POLICY_NAMES = ("logprobs", "old_logprobs", "advantages", "mask")
VALUE_NAMES = ("vpreds", "old_values", "returns", "mask")
PPO_NAMES = ("logprobs", "old_logprobs", "advantages", "vpreds", "old_values", "returns", "mask")
GRID = 256.0


# ---------------------------------------------------------------------------- the oracle (float64)


def reduce(x, mask, how="tokens"):
    """masked_mean and its usual mistakes, on float64 tensors (x may require grad)."""
    zero = torch.zeros((), dtype=x.dtype)
    if how == "ignored":  # every position, padding values included
        return x.mean()
    picked = torch.where(mask, x, zero)
    if how == "positions":  # padding zeroed, but divided by B * T
        return picked.sum() / mask.numel()
    if how == "rows":  # a mean of per-row means (NaN for a row without tokens)
        return (picked.sum(-1) / mask.sum(-1)).mean()
    return picked.sum() / mask.sum()


def f64(x, mask, keep_grad=False):
    """x in float64 with the padding replaced by 0 (selected, never multiplied)."""
    x = x if keep_grad else x.detach()
    return torch.where(mask, x.double(), torch.zeros((), dtype=torch.float64))


def oracle_policy(logprobs, old_logprobs, advantages, mask, cliprange=0.2, *, how="tokens", mistake=None):
    """(pg_loss, pg_clipfrac) in float64 from TRL's formulas; `mistake` names a known-wrong variant."""
    lp = f64(logprobs, mask, keep_grad=True)
    old = f64(old_logprobs, mask)
    adv = f64(advantages, mask)
    log_ratio = old - lp if mistake == "inverted" else lp - old
    ratio = torch.exp(log_ratio)
    pg_losses = -adv * ratio
    if mistake == "clamp_product":
        pg_losses2 = -torch.clamp(adv * ratio, 1.0 - cliprange, 1.0 + cliprange)
    else:
        pg_losses2 = -adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    chosen = torch.min(pg_losses, pg_losses2) if mistake == "min" else torch.max(pg_losses, pg_losses2)
    if mistake == "deviation":
        clipped = (ratio - 1.0).abs() > cliprange
    else:
        clipped = pg_losses2 > pg_losses
    return reduce(chosen, mask, how), reduce(clipped.double(), mask, how)


def oracle_value(vpreds, old_values, returns, mask, cliprange_value=0.2, *, how="tokens", mistake=None):
    """(vf_loss, vf_clipfrac) in float64 from TRL's formulas; `mistake` names a known-wrong variant."""
    v = f64(vpreds, mask, keep_grad=True)
    old = f64(old_values, mask)
    ret = f64(returns, mask)
    centre = ret if mistake == "around_returns" else old
    vclipped = torch.clamp(v, centre - cliprange_value, centre + cliprange_value)
    losses1 = (v - ret) ** 2
    losses2 = (vclipped - ret) ** 2
    half = 1.0 if mistake == "no_half" else 0.5
    if mistake == "unclipped":
        return half * reduce(losses1, mask, how), reduce(torch.zeros_like(losses1), mask, how)
    if mistake == "around_returns":  # the error clipped: only the clipped term, counted where |v - R| > e
        return half * reduce(losses2, mask, how), reduce(
            ((v - ret).abs() > cliprange_value).double(), mask, how
        )
    return half * reduce(torch.max(losses1, losses2), mask, how), reduce(
        (losses2 > losses1).double(), mask, how
    )


def oracle_ppo(lp, old_lp, adv, v, old_v, ret, mask, cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, **kw):
    pg_loss, pg_clipfrac = oracle_policy(lp, old_lp, adv, mask, cliprange, **kw)
    vf_loss, vf_clipfrac = oracle_value(v, old_v, ret, mask, cliprange_value, **kw)
    return pg_loss + vf_coef * vf_loss, pg_loss, vf_loss, pg_clipfrac, vf_clipfrac


def result_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def cast(result, dtype):
    return tuple(x.detach().to(dtype) for x in result)


def tol(dtype):
    """Tolerance of a float32 (or float64) computation against the float64 oracle."""
    if result_dtype(dtype) == torch.float64:
        return {"rtol": 1e-9, "atol": 1e-11}
    return {"rtol": 2e-5, "atol": 2e-6}


# ---------------------------------------------------------------------------- generated batches


def on_grid(rng, shape, scale):
    """Normal numbers of the given scale, rounded to multiples of 1/256 and kept within +-6."""
    return np.clip(np.round(rng.standard_normal(shape) * scale * GRID) / GRID, -6.0, 6.0)


def make_mask(rng, batch, length, empty_rows=()):
    """Each row: a response of 1..length tokens at a random offset; the first row full, the last one
    a single token (so responses always differ in length); rows in `empty_rows` have none."""
    mask = np.zeros((batch, length), dtype=bool)
    for i in range(batch):
        n = int(rng.integers(1, length + 1))
        if i == 0:
            n = length
        elif i == batch - 1:
            n = 1
        start = int(rng.integers(0, length - n + 1))
        mask[i, start : start + n] = True
    for i in empty_rows:
        mask[i] = False
    return torch.from_numpy(mask)


def stabilise(args, cliprange, cliprange_value):
    """Move the tokens whose clip decision could flip under float32 rounding to an unambiguous
    place (ratio 1; vpreds = old_values). Works on already cast tensors, in their dtype."""
    lp, old_lp, adv, v, old_v, ret, mask = args
    d = lp.double() - old_lp.double()
    ratio = torch.exp(d)
    near = ((ratio - (1 + cliprange)).abs() < 1e-3 * (1 + cliprange)) | (
        (ratio - (1 - cliprange)).abs() < 1e-3 * (1 - cliprange)
    )
    lp = torch.where(near, old_lp, lp)
    change = (v.double() - old_v.double()).abs()
    vc = torch.clamp(v.double(), old_v.double() - cliprange_value, old_v.double() + cliprange_value)
    l1 = (v.double() - ret.double()) ** 2
    l2 = (vc - ret.double()) ** 2
    fragile = ((change - cliprange_value).abs() < 1e-3) | (
        (change > cliprange_value) & ((l1 - l2).abs() < 1e-3)
    )
    v = torch.where(fragile, old_v, v)
    return lp, old_lp, adv, v, old_v, ret, mask


def make_batch(batch, length, seed, dtype=torch.float32, cliprange=0.2, cliprange_value=0.2, empty_rows=()):
    """(logprobs, old_logprobs, advantages, vpreds, old_values, returns, mask). The padding holds
    other numbers (as real batches do), some advantages are exactly 0, and ratios and value changes
    fall on both sides of both clip bounds."""
    rng = np.random.default_rng(seed)
    shape = (batch, length)
    mask = make_mask(rng, batch, length, empty_rows)
    old_lp = -np.abs(on_grid(rng, shape, 1.5)) - 0.25
    lp = old_lp + on_grid(rng, shape, 0.3)  # log-ratios: ln 1.2 = 0.18, ln 0.8 = -0.22
    adv = on_grid(rng, shape, 1.0) * (rng.random(shape) > 0.1)  # about 10% exactly 0
    old_v = on_grid(rng, shape, 1.0)
    v = old_v + on_grid(rng, shape, 0.3)
    ret = old_v + on_grid(rng, shape, 0.8)
    arrays = [lp, old_lp, adv, v, old_v, ret]
    pad = ~mask.numpy()
    for x in arrays:  # the padding: other numbers on the grid
        x[pad] = np.round(rng.uniform(-8.0, 8.0, size=int(pad.sum())) * GRID) / GRID
    tensors = [torch.from_numpy(x).to(dtype) for x in arrays]
    return stabilise((*tensors, mask), cliprange, cliprange_value)


def policy_args(args):
    lp, old_lp, adv, _, _, _, mask = args
    return lp, old_lp, adv, mask


def value_args(args):
    _, _, _, v, old_v, ret, mask = args
    return v, old_v, ret, mask


def with_garbage(args, seed):
    """The same batch with huge numbers (+-1e30), +-inf and NaN, mixed, at the padding positions."""
    rng = np.random.default_rng(seed)
    *tensors, mask = args
    out = []
    choices = np.array([1e30, -1e30, math.inf, -math.inf, math.nan])
    for x in tensors:
        filler = torch.from_numpy(choices[rng.integers(0, len(choices), size=tuple(x.shape))]).to(x.dtype)
        out.append(torch.where(mask, x, filler))
    return (*out, mask)


# ---------------------------------------------------------------------------- checks


def policy_mistakes(args4, cliprange, dtype):
    found = {
        MIN: oracle_policy(*args4, cliprange, mistake="min"),
        INVERTED: oracle_policy(*args4, cliprange, mistake="inverted"),
        CLAMP_PRODUCT: oracle_policy(*args4, cliprange, mistake="clamp_product"),
        PADDED_MEAN: oracle_policy(*args4, cliprange, how="positions"),
        SEQUENCE_MEANS: oracle_policy(*args4, cliprange, how="rows"),
        DEVIATION_CLIPFRAC: oracle_policy(*args4, cliprange, mistake="deviation"),
    }
    if cliprange != 0.2:
        found[DEFAULTS] = oracle_policy(*args4, 0.2)
    return {label: cast(r, result_dtype(dtype)) for label, r in found.items()}


def value_mistakes(args4, cliprange_value, dtype):
    found = {
        VALUE_UNCLIPPED: oracle_value(*args4, cliprange_value, mistake="unclipped"),
        VALUE_AROUND_RETURNS: oracle_value(*args4, cliprange_value, mistake="around_returns"),
        NO_HALF: oracle_value(*args4, cliprange_value, mistake="no_half"),
        PADDED_MEAN: oracle_value(*args4, cliprange_value, how="positions"),
        SEQUENCE_MEANS: oracle_value(*args4, cliprange_value, how="rows"),
    }
    if cliprange_value != 0.2:
        found[DEFAULTS] = oracle_value(*args4, 0.2)
    return {label: cast(r, result_dtype(dtype)) for label, r in found.items()}


def pick(mistakes, index):
    return {label: r[index] for label, r in mistakes.items()}


def check_pair(got, expected, mistakes, names, dtype, hint=""):
    """Compare a (loss, clipfrac) tuple with the oracle's, part by part, naming a matched mistake."""
    expect(
        isinstance(got, tuple) and len(got) == 2,
        f"the function must return a tuple ({names[0]}, {names[1]})",
    )
    want = cast(expected, result_dtype(dtype))
    for i, name in enumerate(names):
        assert_close(got[i], want[i], what=name, hint=hint, misconceptions=pick(mistakes, i), **tol(dtype))


def check_ppo(got, args, dtype, kwargs=None, hint=""):
    kwargs = dict(kwargs or {})
    expect(
        isinstance(got, tuple) and len(got) == 5,
        "ppo_loss must return a tuple (loss, pg_loss, vf_loss, pg_clipfrac, vf_clipfrac)",
    )
    cliprange = kwargs.get("cliprange", 0.2)
    cliprange_value = kwargs.get("cliprange_value", 0.2)
    pm = policy_mistakes(policy_args(args), cliprange, dtype)
    vm = value_mistakes(value_args(args), cliprange_value, dtype)
    want = cast(oracle_ppo(*args, **kwargs), result_dtype(dtype))
    parts = [
        ("pg_loss", 1, pick(pm, 0)),
        ("vf_loss", 2, pick(vm, 0)),
        ("pg_clipfrac", 3, pick(pm, 1)),
        ("vf_clipfrac", 4, pick(vm, 1)),
    ]
    for name, i, found in parts:
        assert_close(got[i], want[i], what=name, hint=hint, misconceptions=found, **tol(dtype))
    vf_coef = kwargs.get("vf_coef", 0.1)
    assert_close(
        got[0],
        want[0],
        what="loss",
        hint=hint,
        misconceptions={
            "the loss matches pg_loss + 0.1 * vf_loss: use the vf_coef given": (want[1] + 0.1 * want[2])
        }
        if vf_coef != 0.1
        else None,
        **tol(dtype),
    )


def not_finite(result):
    return any(not (isinstance(x, torch.Tensor) and bool(torch.isfinite(x).all())) for x in result)


def oracle_gradients(fn, args, kwargs, grad_output, dtype):
    """Gradients of the float64 oracle (float64 leaves), cast to the dtype of the inputs."""
    _, grads, _ = local_gradients(fn, args, kwargs, grad_output)
    return [None if g is None else g.to(dtype) for g in grads]


# ---------------------------------------------------------------------------- masked_mean


def test_masked_mean(submission, seed):
    """masked_mean on random masks of different lengths per row: one mean over every masked-in token."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        mask = make_mask(rng, sizes["batch"], sizes["length"])
        values = torch.from_numpy(on_grid(rng, (sizes["batch"], sizes["length"]), 2.0)).float()
        got = submission.masked_mean(values, mask)
        assert_close(
            got,
            reduce(values.double(), mask).float(),
            what="masked_mean",
            misconceptions={
                PADDED_MEAN: reduce(values.double(), mask, "positions").float(),
                SEQUENCE_MEANS: reduce(values.double(), mask, "rows").float(),
                MASK_IGNORED: reduce(values.double(), mask, "ignored").float(),
            },
            **tol(torch.float32),
        )

    shrink(check, {"batch": 6, "length": 10}, seed=seed, minimum={"batch": 2, "length": 2})


# ---------------------------------------------------------------------------- against the formulas


def test_policy_loss_random(submission, seed):
    """policy_loss on random padded batches (responses of different lengths, ratios around both bounds)."""

    def check(sizes, case_seed):
        args = make_batch(sizes["batch"], sizes["length"], case_seed)
        a4 = policy_args(args)
        got = submission.policy_loss(*a4)
        check_pair(
            got,
            oracle_policy(*a4),
            policy_mistakes(a4, 0.2, torch.float32),
            ("pg_loss", "pg_clipfrac"),
            torch.float32,
        )

    shrink(check, {"batch": 6, "length": 12}, seed=seed, minimum={"batch": 2, "length": 2})


def test_value_loss_random(submission, seed):
    """value_loss on random padded batches (value changes on both sides of the clip)."""

    def check(sizes, case_seed):
        args = make_batch(sizes["batch"], sizes["length"], case_seed)
        a4 = value_args(args)
        got = submission.value_loss(*a4)
        check_pair(
            got,
            oracle_value(*a4),
            value_mistakes(a4, 0.2, torch.float32),
            ("vf_loss", "vf_clipfrac"),
            torch.float32,
        )

    shrink(check, {"batch": 6, "length": 12}, seed=seed, minimum={"batch": 2, "length": 2})


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"cliprange": 0.1, "cliprange_value": 0.5, "vf_coef": 0.5}, id="clip-0.1-0.5-coef-0.5"),
        pytest.param({"cliprange": 0.3, "cliprange_value": 0.05, "vf_coef": 1.0}, id="clip-0.3-0.05-coef-1"),
    ],
)
def test_ppo_loss(submission, rng, kwargs):
    """ppo_loss = pg_loss + vf_coef * vf_loss, with the clip ranges and vf_coef given."""
    args = make_batch(
        5,
        11,
        int(rng.integers(1 << 31)),
        cliprange=kwargs.get("cliprange", 0.2),
        cliprange_value=kwargs.get("cliprange_value", 0.2),
    )
    check_ppo(submission.ppo_loss(*args, **kwargs), args, torch.float32, kwargs)


def test_advantages_of_one_sign(submission, rng):
    """All advantages positive, then all negative: only the clip bound on that side of 1 may act."""
    lp, old_lp, adv, _, _, _, mask = make_batch(6, 10, int(rng.integers(1 << 31)))
    for sign in (1.0, -1.0):
        a4 = (lp, old_lp, sign * (adv.abs() + 0.25), mask)
        check_pair(
            submission.policy_loss(*a4),
            oracle_policy(*a4),
            policy_mistakes(a4, 0.2, torch.float32),
            ("pg_loss", "pg_clipfrac"),
            torch.float32,
        )


# ---------------------------------------------------------------------------- edge cases


def boundary_log_ratio(target):
    """A float64 number d with exp(d) == target exactly (in torch and in math)."""
    d = math.log(target)
    candidates = [d]
    below = above = d
    for _ in range(40):
        below, above = math.nextafter(below, -math.inf), math.nextafter(above, math.inf)
        candidates += [below, above]
    shapes = [(), (1,), (8,), (2, 4), (16,), (37,)]
    for d in candidates:
        exact = [bool((torch.exp(torch.full(s, d, dtype=torch.float64)) == target).all()) for s in shapes]
        if math.exp(d) == target and all(exact):
            return d
    pytest.fail("the test could not build a ratio exactly at the clip boundary on this machine")


def test_clip_boundary(submission):
    """Ratios exactly 1 +- cliprange and value changes exactly +-cliprange_value (float64): the two
    terms are equal there, and those tokens do not count as clipped."""
    up, down = boundary_log_ratio(1.25), boundary_log_ratio(0.75)
    # row 0: ratios 1.25, 1.25, 0.75, 0.75 against advantages +2, -1, +1, -3 (boundary: never clipped);
    # row 1: ratio e^0.5 with A = +1 (clipped), e^-0.5 with A = -1 (clipped), e^0.5 with A = -1 (not), pad
    zero = 0.0
    old_lp = torch.tensor([[zero, zero, zero, zero], [-1.0, -1.0, -1.0, 3.0]], dtype=torch.float64)
    lp = torch.tensor([[up, up, down, down], [-0.5, -1.5, -0.5, 7.0]], dtype=torch.float64)
    adv = torch.tensor([[2.0, -1.0, 1.0, -3.0], [1.0, -1.0, -1.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[T_, T_, T_, T_], [T_, T_, T_, F_]])
    a4 = (lp, old_lp, adv, mask)
    check_pair(
        submission.policy_loss(*a4, cliprange=0.25),
        oracle_policy(*a4, 0.25),
        policy_mistakes(a4, 0.25, torch.float64),
        ("pg_loss", "pg_clipfrac"),
        torch.float64,
        hint="at exactly ratio = 1 +- cliprange both terms are equal: not clipped (strictly greater)",
    )
    # values: changes of exactly +-0.25 on either side of the return (never clipped), then 0.5 and -0.5
    old_v = torch.tensor([[0.5, 0.5, -1.0, -1.0], [0.0, 0.0, 2.0, 0.0]], dtype=torch.float64)
    v = torch.tensor([[0.75, 0.75, -1.25, -1.25], [0.5, -0.5, 2.0, 9.0]], dtype=torch.float64)
    ret = torch.tensor([[2.0, -1.0, 0.0, -3.0], [1.0, 1.0, 2.5, -9.0]], dtype=torch.float64)
    b4 = (v, old_v, ret, mask)
    check_pair(
        submission.value_loss(*b4, cliprange_value=0.25),
        oracle_value(*b4, 0.25),
        value_mistakes(b4, 0.25, torch.float64),
        ("vf_loss", "vf_clipfrac"),
        torch.float64,
        hint="at exactly |vpreds - old_values| = cliprange_value nothing is clipped (strictly greater)",
    )


def test_row_without_tokens(submission, rng):
    """A batch where one row has no response token at all: that row contributes nothing (no NaN)."""
    args = make_batch(5, 9, int(rng.integers(1 << 31)), empty_rows=(2,))
    got = submission.ppo_loss(*args)
    hint = ""
    if isinstance(got, tuple) and not_finite(got):
        hint = (
            "the results are not finite when a row has no response token: with one mean over the "
            "tokens of the batch, such a row adds nothing to the sum and nothing to the count"
        )
    check_ppo(got, args, torch.float32, hint=hint)


def test_padding_may_hold_anything(submission, rng):
    """The padding holds huge numbers, +-inf or NaN: the results are those of the response tokens alone."""
    seed = int(rng.integers(1 << 31))
    args = make_batch(5, 10, seed)
    got = submission.ppo_loss(*with_garbage(args, seed))
    hint = ""
    if isinstance(got, tuple) and not_finite(got):
        hint = (
            "the results are not finite when the padding holds huge numbers, inf or NaN: positions "
            "where the mask is False must not reach them (see 'What the padding may hold')"
        )
    check_ppo(got, args, torch.float32, hint=hint)


PADDING_GRADIENT = (
    "the gradient at padding positions is not exactly 0 when the padding holds huge numbers, inf or "
    "NaN: see 'What the padding may hold' for where to select"
)


def check_gradients(found, want, names, mask, dtype):
    """The submission's input gradients against the oracle's: exactly 0 at the padding first (with
    its own hint), then the values everywhere."""
    expect(
        isinstance(found.inputs, list) and len(found.inputs) == len(names),
        f"exactly {len(names)} gradients were expected: those of " + " and ".join(names),
    )
    for name, got, exp in zip(names, found.inputs, want, strict=True):
        if isinstance(got, torch.Tensor) and got.shape == mask.shape:
            at_padding = torch.where(mask, torch.zeros((), dtype=got.dtype), got)
            expect(
                bool((at_padding == 0).all()),  # NaN fails too
                f"the gradient of {name} is not exactly 0 at the padding",
                hint=PADDING_GRADIENT,
            )
        assert_close(got, exp, what=f"the gradient of {name}", **tol(dtype))


def test_padding_gradients(submission, rng):
    """Backward with huge, infinite and NaN padding: finite gradients, exactly 0 at the padding."""
    seed = int(rng.integers(1 << 31))
    clean = make_batch(5, 10, seed)
    lp, old_lp, adv, v, old_v, ret, mask = with_garbage(clean, seed)
    args = (lp.clone().requires_grad_(), old_lp, adv, v.clone().requires_grad_(), old_v, ret, mask)
    grad_output = (torch.tensor(1.0), torch.tensor(0.5), torch.tensor(2.0))
    found = submission.ppo_loss.backward(*args, grad_output=grad_output)
    check_ppo(found.output, clean, torch.float32)
    want = oracle_gradients(oracle_ppo, args, {}, grad_output, torch.float32)
    check_gradients(found, want, ("logprobs", "vpreds"), mask, torch.float32)


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]
)
def test_gradients(submission, rng, dtype):
    """Backward from (loss, pg_loss, vf_loss) with weights 1, 0.5 and 2: the gradients of logprobs, vpreds."""
    lp, old_lp, adv, v, old_v, ret, mask = make_batch(
        6, 12, int(rng.integers(1 << 31)), dtype=dtype, cliprange=0.15, cliprange_value=0.3
    )
    args = (lp.clone().requires_grad_(), old_lp, adv, v.clone().requires_grad_(), old_v, ret, mask)
    grad_output = (
        torch.tensor(1.0, dtype=dtype),
        torch.tensor(0.5, dtype=dtype),
        torch.tensor(2.0, dtype=dtype),
    )
    kwargs = {"cliprange": 0.15, "cliprange_value": 0.3, "vf_coef": 0.25}
    found = submission.ppo_loss.backward(*args, grad_output=grad_output, **kwargs)
    check_ppo(found.output, args, dtype, kwargs)
    want = oracle_gradients(oracle_ppo, args, kwargs, grad_output, dtype)
    check_gradients(found, want, ("logprobs", "vpreds"), mask, dtype)


def test_constants_get_no_gradient(submission, rng):
    """old_logprobs, advantages, old_values and returns require grad here, yet receive none."""
    args = make_batch(5, 10, int(rng.integers(1 << 31)))
    leaves = [x.clone().requires_grad_() for x in args[:6]]
    found = submission.ppo_loss.backward(*leaves, args[6], grad_output=torch.tensor(1.0))
    check_ppo(found.output, args, torch.float32)
    expect(len(found.inputs) == 6, "one gradient (or None) was expected for each float input")
    for name, got in zip(PPO_NAMES, found.inputs, strict=False):
        if name not in ("logprobs", "vpreds"):
            expect(
                got is None or (isinstance(got, torch.Tensor) and bool((got == 0).all())),
                f"a gradient reached `{name}`, which is a constant of the rollout",
                hint="detach old_logprobs, advantages, old_values and returns: only logprobs and vpreds "
                "are trained",
            )
    want = oracle_gradients(oracle_ppo, (*leaves, args[6]), {}, torch.tensor(1.0), torch.float32)
    trained = [(found.inputs[0], want[0]), (found.inputs[3], want[3])]
    for name, (got, exp) in zip(("logprobs", "vpreds"), trained, strict=True):
        assert_close(got, exp, what=f"the gradient of {name}", **tol(torch.float32))


# ---------------------------------------------------------------------------- dtypes


def check_dtype(submission, args, dtype):
    got = submission.ppo_loss(*args)
    if isinstance(got, tuple) and len(got) == 5:
        dtypes = {x.dtype for x in got if isinstance(x, torch.Tensor)}
        if dtype in (torch.float16, torch.bfloat16) and dtypes == {dtype}:
            expect(False, "the results have the wrong dtype", hint=HALF_DTYPE)
        if dtype == torch.float64 and dtypes == {torch.float32}:
            expect(False, "the results have the wrong dtype", hint=FLOAT32_FOR_64)
    check_ppo(got, args, dtype)


def test_float64(submission, rng):
    """float64 inputs are computed in float64 and give float64 results."""
    check_dtype(submission, make_batch(5, 10, int(rng.integers(1 << 31)), dtype=torch.float64), torch.float64)


def test_half_precision_inputs(submission, rng):
    """float16 and bfloat16 inputs are computed in float32 and give float32 results."""
    seed = int(rng.integers(1 << 31))
    for dtype in (torch.bfloat16, torch.float16):
        check_dtype(submission, make_batch(5, 10, seed, dtype=dtype), dtype)


# ---------------------------------------------------------------------------- inputs left unchanged

UNCHANGED = (
    "work on new tensors (torch.where, .to, arithmetic) instead of writing into the ones given: "
    "masked_fill_, x[~mask] = ... and x *= ... change the caller's tensors"
)


def test_inputs_unchanged(submission, rng):
    """ppo_loss, policy_loss and value_loss leave every input as it was."""
    args = make_batch(4, 9, int(rng.integers(1 << 31)))
    # Only the inputs are checked here: the values of ppo_loss with its defaults are checked by
    # test_row_without_tokens and test_padding_may_hold_anything, those of the other three functions by
    # test_policy_loss_random, test_value_loss_random and test_masked_mean.
    call_unchanged(submission.ppo_loss, *args, names=PPO_NAMES, what="ppo_loss", hint=UNCHANGED)
    call_unchanged(
        submission.policy_loss, *policy_args(args), names=POLICY_NAMES, what="policy_loss", hint=UNCHANGED
    )
    call_unchanged(
        submission.value_loss, *value_args(args), names=VALUE_NAMES, what="value_loss", hint=UNCHANGED
    )
    values, mask = args[0], args[-1]
    call_unchanged(
        submission.masked_mean, values, mask, names=("values", "mask"), what="masked_mean", hint=UNCHANGED
    )
