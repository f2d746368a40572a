"""Hidden tests for model-merging: task arithmetic, magnitude pruning, TIES and SLERP against an
independent float64 implementation (numpy, below), hand-built cases where each step shows, the
edge cases of the lesson, dtypes, ValueErrors and unchanged inputs.

The oracle is written here, not imported from the reference: it follows the lesson's statement of
PEFT's merge_utils (trim per tensor with a threshold rule instead of topk, sign by total mass with
0 -> +1, disjoint mean over the agreeing entries) and mergekit's slerp (flattened, eps 1e-8,
DOT_THRESHOLD 0.9995), in float64. Its keyword flags produce the outputs of the named mistakes.
"""

import math

import numpy as np
import pytest
import torch

from grader.testing import assert_close, call_unchanged, compare, dtype_params, expect, shrink, tolerance

# ---------------------------------------------------------------------------- one wording per mistake

NO_BASE = (
    "the output matches base + lam * the sum of the fine-tuned weights: a task vector is finetuned - base"
)
AVERAGED = "the output matches the task vectors averaged over the tasks: task arithmetic sums them"
FIRST_WEIGHT = "the output matches lam[0] used for every task: weight task i by lam[i]"
LAM_TWICE = "the output matches lam applied twice: base + sum_i lam_i * (finetuned_i - base)"
SIGNED_RANK = "the output matches a ranking by signed value: rank the entries by magnitude |x|"
SMALLEST = "the output matches the smallest magnitudes kept: keep the largest"
TOPK = "the output matches exactly k entries kept: every entry tied with the k-th largest |x| is kept"
CEIL = "the output matches k rounded up: k = int(density * numel) rounds down"
COUNT_VOTE = (
    "the output matches a sign elected by counting tasks: elect the sign of the sum of the trimmed values"
)
OVER_TASKS = (
    "the output matches a disjoint mean divided by the number of tasks: divide by the agreeing entries"
)
NO_TRIM = "the output matches task vectors left untrimmed: keep k = int(density * numel) entries of each"
GLOBAL_TRIM = (
    "the output matches one trim over all tensors at once: trim each tensor of a task vector on its own"
)
ZERO_SIGN = "the output matches no sign elected where the total is 0: a total of exactly 0 elects +1"
NO_ELECTION = (
    "the output matches a plain mean of the trimmed task vectors: keep only the entries with the elected sign"
)
LAM_IGNORED = "the output matches lam = 1: the result is base + lam * the disjoint mean"
UNIT_SLERP = "the output matches slerp of the normalised tensors: apply the weights to the original tensors"
LINEAR = "the output matches linear interpolation where the angle is not small: use the slerp formula there"
REVERSED = "the output matches t measured from b: t = 0 gives a, t = 1 gives b"
PER_ROW = "the output matches one angle per row: flatten the whole tensor, one angle per tensor"
FALLBACK_HINT = (
    "linear interpolation is expected for (anti)parallel tensors: |dot| > 0.9995, dot near -1 included"
)
ZERO_LINEAR = (
    "the output matches linear interpolation for a tensor of zeros: it is not normalised, so theta = pi/2"
)

INPLACE_HINT = (
    "compute new tensors: `merged = base` shares base's tensors, `+=` and `add_` write into them, and "
    ".double() / .to(torch.float64) return the tensor itself when it already is float64"
)
FLOAT64_HINT = "a float64 input keeps float64's precision: compute in float64, not float32"

# ---------------------------------------------------------------------------- the oracle (float64, numpy)


def arr(t):
    return t.detach().to(torch.float64).numpy()


def back(values, like):
    """A dict of float64 arrays as a state dict in the dtypes of `like`, with its keys."""
    return {
        key: torch.from_numpy(np.asarray(values[key], dtype=np.float64)).to(like[key].dtype) for key in like
    }


def prune(x, density, *, rule="threshold"):
    x = np.asarray(x, dtype=np.float64)
    k = math.ceil(density * x.size) if rule == "ceil" else int(density * x.size)
    if k == 0:
        return np.zeros_like(x)
    key = x if rule == "signed" else np.abs(x)
    order = np.sort(key.ravel())
    if rule == "smallest":
        return np.where(key <= order[k - 1], x, 0.0)
    return np.where(key >= order[::-1][k - 1], x, 0.0)


def o_task_arithmetic(
    base, finetuned, lam=1.0, *, subtract=True, average=False, first_only=False, twice=False
):
    weights = [float(lam)] * len(finetuned) if isinstance(lam, int | float) else [float(w) for w in lam]
    if first_only:
        weights = [weights[0]] * len(weights)
    if twice:
        weights = [w * w for w in weights]
    out = {}
    for key in base:
        b = arr(base[key])
        delta = sum(
            w * (arr(m[key]) - (b if subtract else 0.0)) for w, m in zip(weights, finetuned, strict=True)
        )
        if average:
            delta = delta / len(finetuned)
        out[key] = b + delta
    return back(out, base)


def o_ties(
    base,
    finetuned,
    density,
    lam=1.0,
    *,
    vote="mass",
    divide="agree",
    trim="tensor",
    zero_sign=+1.0,
    elect=True,
):
    keys = list(base)
    taus = [{key: arr(m[key]) - arr(base[key]) for key in keys} for m in finetuned]
    if trim == "tensor":
        trimmed = [{key: prune(tau[key], density) for key in keys} for tau in taus]
    elif trim == "global":  # the whole task vector flattened into one
        trimmed = []
        for tau in taus:
            flat = prune(np.concatenate([tau[key].ravel() for key in keys]), density)
            pieces, at = {}, 0
            for key in keys:
                n = tau[key].size
                pieces[key] = flat[at : at + n].reshape(tau[key].shape)
                at += n
            trimmed.append(pieces)
    else:  # no trim
        trimmed = taus
    out = {}
    for key in keys:
        stack = np.stack([t[key] for t in trimmed])
        total = stack.sum(axis=0) if vote == "mass" else np.sign(stack).sum(axis=0)
        sign = np.where(total > 0, 1.0, np.where(total < 0, -1.0, zero_sign))
        agree = (np.sign(stack) == sign) if elect else np.ones_like(stack, dtype=bool)
        kept = np.where(agree, stack, 0.0).sum(axis=0)
        count = np.maximum(agree.sum(axis=0), 1) if divide == "agree" else len(finetuned)
        out[key] = arr(base[key]) + lam * kept / count
    return back(out, base)


def slerp_vectors(x, y, t, *, fallback=True, unit=False):
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    ux = x / nx if nx > 1e-8 else x
    uy = y / ny if ny > 1e-8 else y
    dot = float(np.sum(ux * uy))
    if unit:
        x, y = ux, uy
    if fallback and abs(dot) > 0.9995:
        return (1 - t) * x + t * y
    theta = math.acos(max(-1.0, min(1.0, dot)))
    s = math.sin(theta)
    return math.sin((1 - t) * theta) / s * x + math.sin(t * theta) / s * y


def o_slerp(a, b, t, *, fallback=True, unit=False, per_row=False, linear=False, reversed_t=False):
    out = {}
    for key in a:
        x, y = arr(a[key]), arr(b[key])
        if linear:
            out[key] = (1 - t) * x + t * y
        elif reversed_t:
            out[key] = slerp_vectors(y.ravel(), x.ravel(), t, fallback=fallback).reshape(x.shape)
        elif per_row and x.ndim >= 2:
            rows = [
                slerp_vectors(r, s, t, fallback=fallback)
                for r, s in zip(x.reshape(x.shape[0], -1), y.reshape(x.shape[0], -1), strict=True)
            ]
            out[key] = np.stack(rows).reshape(x.shape)
        else:
            out[key] = slerp_vectors(x.ravel(), y.ravel(), t, fallback=fallback, unit=unit).reshape(x.shape)
    return back(out, a)


def ta_mistakes(base, finetuned, lam):
    found = {
        NO_BASE: o_task_arithmetic(base, finetuned, lam, subtract=False),
        AVERAGED: o_task_arithmetic(base, finetuned, lam, average=True),
    }
    if not isinstance(lam, int | float):
        found[FIRST_WEIGHT] = o_task_arithmetic(base, finetuned, lam, first_only=True)
        found[LAM_TWICE] = o_task_arithmetic(base, finetuned, lam, twice=True)
    return found


def ties_mistakes(base, finetuned, density, lam):
    return {
        COUNT_VOTE: o_ties(base, finetuned, density, lam, vote="count"),
        OVER_TASKS: o_ties(base, finetuned, density, lam, divide="tasks"),
        GLOBAL_TRIM: o_ties(base, finetuned, density, lam, trim="global"),
        NO_TRIM: o_ties(base, finetuned, density, lam, trim="none"),
        NO_ELECTION: o_ties(base, finetuned, density, lam, elect=False, divide="tasks"),
        LAM_IGNORED: o_ties(base, finetuned, density, 1.0),
    }


def slerp_mistakes(a, b, t):
    return {
        UNIT_SLERP: o_slerp(a, b, t, unit=True),
        LINEAR: o_slerp(a, b, t, linear=True),
        REVERSED: o_slerp(a, b, t, reversed_t=True),
        PER_ROW: o_slerp(a, b, t, per_row=True),
    }


# ---------------------------------------------------------------------------- inputs

SHAPES = {"embed.weight": ("rows", "cols"), "layer.weight": ("cols", "rows"), "layer.bias": ("rows",)}


def randn(rng, *shape, scale=1.0, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape) * scale).to(dtype)


def models(rng, sizes, n_tasks, *, dtype=torch.float32):
    """A base state dict of three tensors and n_tasks fine-tuned ones (base + a task vector each),
    the task vectors of different scales per tensor, as fine-tuning gives."""
    base, finetuned = {}, [{} for _ in range(n_tasks)]
    for key, dims in SHAPES.items():
        shape = tuple(sizes[d] for d in dims)
        base[key] = randn(rng, *shape, dtype=dtype)
        for m in finetuned:
            m[key] = (
                base[key].double()
                + randn(rng, *shape, scale=float(rng.uniform(0.01, 0.5)), dtype=torch.float64)
            ).to(dtype)
    return base, finetuned


def expect_value_error(call, message):
    try:
        call()
    except ValueError:
        return
    expect(
        False, message, hint="check the inputs first and raise ValueError with a message naming the problem"
    )


# ---------------------------------------------------------------------------- task arithmetic


@pytest.mark.parametrize(
    "lam",
    [
        pytest.param(1.0, id="lam-1"),
        pytest.param(0.35, id="lam-0.35"),
        pytest.param([0.7, -0.4, 1.3], id="one-weight-per-task"),
    ],
)
def test_task_arithmetic_random(submission, seed, lam):
    """Task arithmetic on random state dicts of three tensors, against the float64 formula."""
    n_tasks = 3 if isinstance(lam, list) else None

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        base, finetuned = models(rng, sizes, n_tasks or sizes["tasks"])
        assert_close(
            submission.task_arithmetic(base, finetuned, lam=lam),
            o_task_arithmetic(base, finetuned, lam),
            what="task_arithmetic(base, finetuned, lam)",
            misconceptions=ta_mistakes(base, finetuned, lam),
        )

    sizes = {"rows": 6, "cols": 5} if n_tasks else {"tasks": 4, "rows": 6, "cols": 5}
    minimum = {"rows": 1, "cols": 1} if n_tasks else {"tasks": 2, "rows": 1, "cols": 1}
    shrink(check, sizes, seed=seed, minimum=minimum, budget=24)


def test_task_arithmetic_negation(submission, rng):
    """One task with lam = -1 subtracts its task vector: base - (finetuned - base) = 2 base - finetuned."""
    base, finetuned = models(rng, {"rows": 4, "cols": 3}, 1)
    expected = {key: (2 * base[key].double() - finetuned[0][key].double()).float() for key in base}
    assert_close(
        submission.task_arithmetic(base, finetuned, lam=[-1.0]),
        expected,
        misconceptions=ta_mistakes(base, finetuned, [-1.0]),
    )


# ---------------------------------------------------------------------------- magnitude_prune


@pytest.mark.parametrize(
    "density",
    [
        pytest.param(0.0, id="density-0"),
        pytest.param(0.01, id="density-0.01-k-0"),
        pytest.param(0.37, id="density-0.37"),
        pytest.param(0.5, id="density-0.5"),
        pytest.param(1.0, id="density-1"),
    ],
)
def test_magnitude_prune_random(submission, rng, density):
    """magnitude_prune of a random (7, 9) tensor: k = int(density * 63) entries of largest |x| kept."""
    tau = randn(rng, 7, 9)
    expected = torch.from_numpy(prune(arr(tau), density)).float()
    assert_close(
        submission.magnitude_prune(tau, density),
        expected,
        what=f"magnitude_prune(tau, {density})",
        misconceptions={
            SIGNED_RANK: torch.from_numpy(prune(arr(tau), density, rule="signed")).float(),
            SMALLEST: torch.from_numpy(prune(arr(tau), density, rule="smallest")).float(),
            CEIL: torch.from_numpy(prune(arr(tau), density, rule="ceil")).float(),
        },
    )


@pytest.mark.parametrize(
    "density", [pytest.param(0.25, id="density-0.25"), pytest.param(0.6, id="density-0.6")]
)
def test_magnitude_prune_ties(submission, rng, density):
    """A (6, 10) tensor of few distinct magnitudes: every entry tied with the k-th largest |x| is kept."""
    tau = torch.from_numpy(rng.integers(-4, 5, size=(6, 10)).astype(np.float32) * 0.5)
    expected = torch.from_numpy(prune(arr(tau), density)).float()
    got = submission.magnitude_prune(tau, density)
    k = int(density * tau.numel())
    few = (
        isinstance(got, torch.Tensor)
        and got.shape == tau.shape
        and int((got != 0).sum()) <= k < int((expected != 0).sum())
    )
    assert_close(
        got,
        expected,
        what=f"magnitude_prune(tau, {density}) with ties at the threshold",
        hint=TOPK if few else "",
    )


@pytest.mark.parametrize("dtype", dtype_params("bfloat16", "float64"))
def test_magnitude_prune_keeps_dtype(submission, rng, dtype):
    """bfloat16 and float64 tensors are pruned into their own dtype and shape, the kept values unchanged."""
    tau = randn(rng, 4, 8, dtype=dtype)
    expected = torch.from_numpy(prune(arr(tau), 0.3)).to(dtype)
    assert_close(submission.magnitude_prune(tau, 0.3), expected, rtol=0.0, atol=0.0)


# ---------------------------------------------------------------------------- TIES, step by step


def one_tensor(base, taus):
    b = {"w": torch.tensor(base, dtype=torch.float64)}
    return b, [{"w": b["w"] + torch.tensor(tau, dtype=torch.float64)} for tau in taus]


def test_ties_sign_by_mass(submission):
    """Density 1: entry 0 has +6 against -1, -1, -1 (elected +); entry 1 has -5 against +1, +1 (elected -)."""
    base, finetuned = one_tensor([0.0, 0.0], [[6.0, -5.0], [-1.0, 1.0], [-1.0, 1.0], [-1.0, 0.0]])
    assert_close(
        submission.ties_merge(base, finetuned, density=1.0),
        {"w": torch.tensor([6.0, -5.0], dtype=torch.float64)},
        misconceptions=ties_mistakes(base, finetuned, 1.0, 1.0),
    )


def test_ties_disjoint_mean(submission):
    """Density 1: entry 0 is [2, 4, -1, 0] (mean of 2 and 4: 3), entry 1 is [0, 0, 0, -6] (-6, not -6/4)."""
    base, finetuned = one_tensor([1.0, 1.0], [[2.0, 0.0], [4.0, 0.0], [-1.0, 0.0], [0.0, -6.0]])
    assert_close(
        submission.ties_merge(base, finetuned, density=1.0),
        {"w": torch.tensor([4.0, -5.0], dtype=torch.float64)},
        misconceptions=ties_mistakes(base, finetuned, 1.0, 1.0),
    )


def test_ties_zero_total_elects_plus(submission):
    """Density 1: entry 0 is [+1.5, -1.5] (total 0: +1 is elected, the mean is 1.5); entry 1 is [0, 0]."""
    base, finetuned = one_tensor([2.0, 2.0], [[1.5, 0.0], [-1.5, 0.0]])
    assert_close(
        submission.ties_merge(base, finetuned, density=1.0),
        {"w": torch.tensor([3.5, 2.0], dtype=torch.float64)},
        misconceptions={
            ZERO_SIGN: o_ties(base, finetuned, 1.0, zero_sign=0.0),
            **ties_mistakes(base, finetuned, 1.0, 1.0),
        },
    )


def test_ties_trims_each_tensor(submission, rng):
    """Two tensors with task vectors of very different scales (about 10 and 0.01), density 0.5: each
    tensor keeps half of its own entries."""
    base = {"big": randn(rng, 4, 5), "small": randn(rng, 20)}
    finetuned = [
        {
            "big": base["big"] + randn(rng, 4, 5, scale=10.0),
            "small": base["small"] + randn(rng, 20, scale=0.01),
        }
        for _ in range(3)
    ]
    assert_close(
        submission.ties_merge(base, finetuned, density=0.5, lam=0.8),
        o_ties(base, finetuned, 0.5, 0.8),
        misconceptions=ties_mistakes(base, finetuned, 0.5, 0.8),
    )


@pytest.mark.parametrize("density", [pytest.param(0.0, id="density-0"), pytest.param(1.0, id="density-1")])
def test_ties_density_extremes(submission, rng, density):
    """Density 0 trims everything (the result is the base); density 1 trims nothing."""
    base, finetuned = models(rng, {"rows": 5, "cols": 4}, 3)
    expected = o_ties(base, finetuned, density, 0.6)
    if density == 0.0:
        expected_base = {key: value.clone() for key, value in base.items()}
        assert_close(expected, expected_base)  # the oracle agrees: nothing is added
    assert_close(
        submission.ties_merge(base, finetuned, density=density, lam=0.6),
        expected,
        misconceptions=ties_mistakes(base, finetuned, density, 0.6),
    )


@pytest.mark.parametrize(
    "density, lam",
    [
        pytest.param(0.2, 1.0, id="density-0.2"),
        pytest.param(0.5, 0.7, id="density-0.5-lam-0.7"),
        pytest.param(0.9, 1.5, id="density-0.9-lam-1.5"),
    ],
)
def test_ties_random(submission, seed, density, lam):
    """TIES on random state dicts of three tensors and several tasks, against the float64 formula."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        base, finetuned = models(rng, sizes, sizes["tasks"])
        assert_close(
            submission.ties_merge(base, finetuned, density=density, lam=lam),
            o_ties(base, finetuned, density, lam),
            what=f"ties_merge(base, finetuned, density={density}, lam={lam})",
            misconceptions=ties_mistakes(base, finetuned, density, lam),
        )

    shrink(
        check,
        {"tasks": 4, "rows": 8, "cols": 6},
        seed=seed,
        minimum={"tasks": 2, "rows": 1, "cols": 1},
        budget=24,
    )


# ---------------------------------------------------------------------------- SLERP


def pair(rng, sizes, *, dtype=torch.float32):
    """Two state dicts of three tensors, b partly correlated with a (moderate angles) and of other norms."""
    a, b = {}, {}
    for key, dims in SHAPES.items():
        shape = tuple(sizes[d] for d in dims)
        a[key] = randn(rng, *shape, dtype=dtype)
        mix = float(rng.uniform(0.0, 0.8))
        b[key] = (
            mix * a[key].double()
            + randn(rng, *shape, scale=float(rng.uniform(0.5, 3.0)), dtype=torch.float64)
        ).to(dtype)
    return a, b


@pytest.mark.parametrize(
    "t", [pytest.param(0.1, id="t-0.1"), pytest.param(0.5, id="t-0.5"), pytest.param(0.77, id="t-0.77")]
)
def test_slerp_random(submission, seed, t):
    """SLERP of random state dicts (matrices and a vector), against mergekit's formula in float64."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        a, b = pair(rng, sizes)
        assert_close(
            submission.slerp(a, b, t),
            o_slerp(a, b, t),
            what=f"slerp(a, b, {t})",
            misconceptions=slerp_mistakes(a, b, t),
        )

    shrink(check, {"rows": 6, "cols": 5}, seed=seed, minimum={"rows": 2, "cols": 2}, budget=24)


@pytest.mark.parametrize("t", [pytest.param(0.0, id="t-0-gives-a"), pytest.param(1.0, id="t-1-gives-b")])
def test_slerp_endpoints(submission, rng, t):
    """t = 0 returns a and t = 1 returns b (to float32's precision)."""
    a, b = pair(rng, {"rows": 5, "cols": 3})
    expected = a if t == 0.0 else b
    assert_close(
        submission.slerp(a, b, t),
        expected,
        misconceptions=slerp_mistakes(a, b, t),
    )


def at_angle(rng, cos, n=24):
    """Two float64 vectors of norms 2 and 3 whose angle has the given cosine."""
    u = rng.standard_normal(n)
    u /= np.linalg.norm(u)
    v = rng.standard_normal(n)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    a = 2.0 * u
    b = 3.0 * (cos * u + math.sqrt(1.0 - cos * cos) * v)
    return {"w": torch.from_numpy(a)}, {"w": torch.from_numpy(b)}


@pytest.mark.parametrize(
    "cos",
    [
        pytest.param(0.99995, id="cos-0.99995-linear"),
        pytest.param(0.9998, id="cos-0.9998-linear"),
        pytest.param(0.999, id="cos-0.999-slerp"),
        pytest.param(0.99, id="cos-0.99-slerp"),
    ],
)
def test_slerp_near_threshold(submission, rng, cos):
    """float64 vectors at a small angle, above and below the 0.9995 threshold: linear above, slerp below."""
    a, b = at_angle(rng, cos)
    t = 0.3
    got, want = submission.slerp(a, b, t), o_slerp(a, b, t)
    # right to float32's precision only: the named mistakes below take precedence when one matches
    near = compare(got, want, rtol=1e-6, atol=1e-7) is None
    assert_close(
        got,
        want,
        rtol=1e-10,
        atol=1e-12,
        hint=FLOAT64_HINT if near else "",
        misconceptions={FALLBACK_HINT: o_slerp(a, b, t, fallback=False), **slerp_mistakes(a, b, t)},
    )


@pytest.mark.parametrize("t", [pytest.param(0.3, id="t-0.3"), pytest.param(0.5, id="t-0.5")])
def test_slerp_opposite(submission, rng, t):
    """b = -2 a: dot = -1 (theta = pi), |dot| > 0.9995, so the result is (1 - t) a + t b."""
    x = randn(rng, 3, 4)
    a, b = {"w": x}, {"w": -2.0 * x}
    got = submission.slerp(a, b, t)
    value = got.get("w") if isinstance(got, dict) else None
    finite = isinstance(value, torch.Tensor) and bool(torch.isfinite(value).all())
    expect(
        finite,
        "slerp gave non-finite values for opposite tensors",
        hint=FALLBACK_HINT,
    )
    assert_close(
        got,
        o_slerp(a, b, t),
        hint=FALLBACK_HINT,
    )


def test_slerp_zero_tensor(submission, rng):
    """A tensor of zeros is not normalised (norm <= 1e-8): dot = 0, theta = pi/2, as mergekit computes."""
    t = 0.4
    a = {"zero_in_a": torch.zeros(3, 4), "zero_in_b": randn(rng, 5), "both_zero": torch.zeros(2)}
    b = {"zero_in_a": randn(rng, 3, 4), "zero_in_b": torch.zeros(5), "both_zero": torch.zeros(2)}
    assert_close(
        submission.slerp(a, b, t),
        o_slerp(a, b, t),
        misconceptions={ZERO_LINEAR: o_slerp(a, b, t, linear=True)},
    )


# ---------------------------------------------------------------------------- ValueErrors


def broken_cases():
    base = {"w": torch.ones(2, 3), "b": torch.zeros(3)}
    missing = {"w": torch.ones(2, 3)}
    extra = {"w": torch.ones(2, 3), "b": torch.zeros(3), "c": torch.zeros(1)}
    shape = {"w": torch.ones(3, 2), "b": torch.zeros(3)}
    good = {"w": torch.full((2, 3), 2.0), "b": torch.ones(3)}
    return base, missing, extra, shape, good


FUNCTIONS = ["task_arithmetic", "ties_merge", "slerp"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_mismatched_state_dicts_raise(submission, function):
    """A state dict with a missing key, an extra key, or a tensor of another shape raises ValueError."""
    base, missing, extra, shape, good = broken_cases()
    for which, bad in (
        ("a missing key", missing),
        ("an extra key", extra),
        ("a tensor of another shape", shape),
    ):
        calls = {
            "task_arithmetic": lambda bad=bad: submission.task_arithmetic(base, [good, bad]),
            "ties_merge": lambda bad=bad: submission.ties_merge(base, [good, bad], density=0.5),
            "slerp": lambda bad=bad: submission.slerp(base, bad, 0.5),
        }
        expect_value_error(
            calls[function], f"{function} did not raise ValueError for a state dict with {which}"
        )


def test_bad_arguments_raise(submission):
    """An empty finetuned list, a lam list of the wrong length, or density outside [0, 1] raise ValueError."""
    base, _, _, _, good = broken_cases()
    expect_value_error(
        lambda: submission.task_arithmetic(base, []),
        "task_arithmetic did not raise ValueError for finetuned = []",
    )
    expect_value_error(
        lambda: submission.ties_merge(base, [], density=0.5),
        "ties_merge did not raise ValueError for finetuned = []",
    )
    expect_value_error(
        lambda: submission.task_arithmetic(base, [good, good], lam=[1.0]),
        "task_arithmetic did not raise ValueError for one weight and two fine-tuned models",
    )
    for density in (-0.1, 1.5):
        expect_value_error(
            lambda d=density: submission.ties_merge(base, [good], density=d),
            f"ties_merge did not raise ValueError for density = {density}",
        )
        expect_value_error(
            lambda d=density: submission.magnitude_prune(torch.ones(4), d),
            f"magnitude_prune did not raise ValueError for density = {density}",
        )


# ---------------------------------------------------------------------------- dtypes


def merged(submission, function, base, finetuned):
    """One call of `function` with the settings of the dtype tests: (output, expected, named mistakes)."""
    if function == "task_arithmetic":
        got = submission.task_arithmetic(base, finetuned, lam=0.6)
        return got, o_task_arithmetic(base, finetuned, 0.6), ta_mistakes(base, finetuned, 0.6)
    if function == "ties_merge":
        got = submission.ties_merge(base, finetuned, density=0.4, lam=0.9)
        return got, o_ties(base, finetuned, 0.4, 0.9), ties_mistakes(base, finetuned, 0.4, 0.9)
    got = submission.slerp(base, finetuned[0], 0.35)
    return got, o_slerp(base, finetuned[0], 0.35), slerp_mistakes(base, finetuned[0], 0.35)


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16", "float32"))
def test_dtypes(submission, rng, dtype):
    """Half-precision and float32 state dicts come back in their own dtype, computed in float64."""
    name = str(dtype).removeprefix("torch.")
    for function in FUNCTIONS:
        base, finetuned = models(rng, {"rows": 6, "cols": 5}, 3, dtype=dtype)
        got, want, mistakes = merged(submission, function, base, finetuned)
        expect(
            isinstance(got, dict)
            and all(isinstance(v, torch.Tensor) and v.dtype == dtype for v in got.values()),
            f"{function} must return {name} tensors for {name} inputs (the base's dtype)",
            hint="compute in float64 and cast each result back with .to(base[key].dtype)",
        )
        tol = {} if dtype == torch.float32 else tolerance(dtype)
        assert_close(got, want, what=f"{function} on {name} state dicts", **tol, misconceptions=mistakes)


def test_float64_precision(submission, rng):
    """float64 state dicts (values float32 cannot hold) keep float64's precision: within 1e-12 of exact."""
    for function in FUNCTIONS:
        base, finetuned = models(rng, {"rows": 6, "cols": 5}, 3, dtype=torch.float64)
        for m in finetuned:
            for key in m:
                m[key] = m[key] + 1e-9 * torch.from_numpy(rng.standard_normal(tuple(m[key].shape)))
        got, want, mistakes = merged(submission, function, base, finetuned)
        what = f"{function} on float64 state dicts"
        # first right to float32's precision (a named mistake shows here), then to float64's
        assert_close(got, want, what=what, rtol=1e-5, atol=1e-6, misconceptions=mistakes)
        assert_close(got, want, what=what, rtol=1e-12, atol=1e-12, hint=FLOAT64_HINT)


# ---------------------------------------------------------------------------- inputs left alone


@pytest.mark.parametrize("function", [*FUNCTIONS, "magnitude_prune"])
def test_inputs_unchanged(submission, rng, function):
    """No function changes a tensor it was given (float32 and float64 inputs): the base is merged again."""
    for dtype in (torch.float32, torch.float64):
        check_unchanged(submission, rng, function, dtype)


def check_unchanged(submission, rng, function, dtype):
    """One call of `function` on `dtype` inputs kept in the runner, failing if it changed any of them.
    Only the inputs are checked here: the values of the same calls are checked by the random, dtype
    and float64 tests above."""
    base, finetuned = models(rng, {"rows": 5, "cols": 4}, 2, dtype=dtype)
    fn = getattr(submission, function)
    if function == "task_arithmetic":
        call_unchanged(
            fn, base, finetuned, names=("base", "finetuned"), what=function, hint=INPLACE_HINT, lam=0.5
        )
    elif function == "ties_merge":
        call_unchanged(
            fn,
            base,
            finetuned,
            names=("base", "finetuned"),
            what=function,
            hint=INPLACE_HINT,
            density=0.5,
            lam=0.5,
        )
    elif function == "slerp":
        call_unchanged(fn, base, finetuned[0], 0.3, names=("a", "b", "t"), what=function, hint=INPLACE_HINT)
    else:
        call_unchanged(
            fn, base["embed.weight"], names=("tau",), what=function, hint=INPLACE_HINT, density=0.3
        )
