"""Hidden tests for pass-at-k: random problems against an exact oracle (math.comb and Fraction),
with a shrunk smallest failing case; n = 2000 where float binomials overflow; small values where a
float32 product cancels; the n - c < k, c = 0, k = 1 and k = n cases; integer dtypes; the mean;
invalid inputs; inputs left unchanged; and a tensor-op count that must not grow with the number of
problems."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from grader.testing import Call, assert_close, call_unchanged, expect, shrink

# One wording per mistake; each says what the output matched, then how to compute it.
BIASED = (
    "the output matches 1 - (1 - c/n)^k, the biased estimator: use 1 - C(n-c, k) / C(n, k), computed "
    "as 1 - prod_{i=n-c+1}^{n} (1 - k/i)"
)
OFF_BY_ONE = (
    "the output matches the product over i = n-c .. n-1, one below the range: the factors are "
    "(1 - k/i) for i = n-c+1 .. n"
)
MEAN_RETURNED = (
    "the output matches the mean over the problems: pass_at_k returns one value per problem; "
    "mean_pass_at_k returns their mean"
)
NOT_ONE = "where n - c < k every draw of k samples holds a correct one: pass@k is 1.0 there"
OVERFLOW = (
    "the output has NaN or inf values where n - c >= k: every factor (1 - k/i) lies in [0, 1), so their "
    "product stays finite, while binomial coefficients such as C(2000, 1000), about 1e600, overflow "
    "float64 (largest 1.8e308)"
)
PRECISION = (
    "the values are within 1e-3 of the exact ones but not within 1e-7: where pass@k is small it is "
    "1 - (a product close to 1), and float32's 7 digits do not hold it; compute in float64 (dividing "
    "integer tensors gives float32 unless a float64 operand is involved)"
)
VALUE_ERROR_HINT = (
    "check the arguments before computing and raise ValueError: n and c of one shape, k >= 1, "
    "0 <= c <= n and k <= n for every problem"
)

# The exact values in float64 are within 1e-16 relative; the reference (a float64 product) stays
# within 2e-13 of them, a log-gamma form within 5e-9 (measured at n = 200 and 2000, k up to 1000).
# A float32 product is 1e-5 to 1e-3 off where pass@k is small.
RTOL, ATOL = 1e-7, 1e-12


# ---------------------------------------------------------------------------- oracle and mistakes


def exact(n, c, k):
    """pass@k of one problem, exactly: 1 - C(n-c, k) / C(n, k) as a Fraction."""
    if n - c < k:
        return Fraction(1)
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def oracle(n, c, k):
    """The exact per-problem values, rounded once to float64."""
    return torch.tensor(
        [float(exact(a, b, k)) for a, b in zip(n.tolist(), c.tolist(), strict=True)], dtype=torch.float64
    )


def biased(n, c, k):
    return torch.tensor(
        [1.0 - (1.0 - b / a) ** k for a, b in zip(n.tolist(), c.tolist(), strict=True)], dtype=torch.float64
    )


def off_by_one(n, c, k):
    """The product over i = n-c .. n-1 (1.0 where n - c < k, 0 where c = 0)."""
    out = []
    for a, b in zip(n.tolist(), c.tolist(), strict=True):
        if a - b < k:
            out.append(1.0)
            continue
        prod = Fraction(1)
        for i in range(a - b, a):
            prod *= 1 - Fraction(k, i)
        out.append(float(1 - prod))
    return torch.tensor(out, dtype=torch.float64)


def mistakes(n, c, k):
    """Wording -> what each mistake returns for (n, c, k), keeping those that differ from the
    right answer and from one another."""
    right = oracle(n, c, k)
    found = {
        BIASED: biased(n, c, k),
        OFF_BY_ONE: off_by_one(n, c, k),
        MEAN_RETURNED: right.mean(),
    }
    kept, seen = {}, [right]
    for label, wrong in found.items():
        if any(
            wrong.shape == other.shape and torch.allclose(wrong, other, rtol=RTOL, atol=ATOL)
            for other in seen
        ):
            continue
        seen.append(wrong)
        kept[label] = wrong
    return kept


def nan_hint(got, n, c, k):
    """For an output with NaN or inf values: which rows hold them, in our words."""
    if not isinstance(got, torch.Tensor) or got.shape != n.shape or not got.is_floating_point():
        return ""
    bad = ~torch.isfinite(got)
    if not bool(bad.any()):
        return ""
    return NOT_ONE if bool((bad <= (n - c < k)).all()) else OVERFLOW


def check_values(got, n, c, k, *, what, hint=""):
    """pass_at_k's output for (n, c, k) against the exact values: first to 1e-3, naming a mistake
    or NaN rows; then to 1e-7, as float64 arithmetic gets (a mistake still named first)."""
    want = oracle(n, c, k)
    wrong = mistakes(n, c, k)
    found = nan_hint(got, n, c, k)
    assert_close(got, want, what=what, rtol=1e-3, atol=1e-9, hint=found or hint, misconceptions=wrong)
    assert_close(got, want, what=what, rtol=RTOL, atol=ATOL, hint=PRECISION, misconceptions=wrong)


def check(submission, n, c, k, *, what, hint=""):
    """pass_at_k(n, c, k) against the exact values, naming a matched mistake."""
    check_values(submission.pass_at_k(n, c, k), n, c, k, what=what, hint=hint)


def problems(rng, count, n_low, n_high, k):
    """`count` problems with n in [max(n_low, k), n_high] samples and c uniform in [0, n]."""
    n = rng.integers(max(n_low, k), n_high + 1, size=count)
    c = rng.integers(0, n + 1)
    return torch.from_numpy(n).to(torch.int64), torch.from_numpy(c).to(torch.int64)


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize("k", [pytest.param(k, id=f"k-{k}") for k in (1, 2, 10, 50, 100)])
def test_random_problems(submission, seed, k):
    """Random problems with n = 200 samples each (the Codex paper's setting), against exact values."""

    def case(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        c = torch.from_numpy(rng.integers(0, 201, size=sizes["P"])).to(torch.int64)
        n = torch.full_like(c, 200)
        check(submission, n, c, k, what=f"pass_at_k(n, c, k={k}) for {sizes['P']} problems of n = 200")

    shrink(case, {"P": 40}, seed=seed, minimum={"P": 2})


def test_different_n_per_problem(submission, rng):
    """Problems with different numbers of samples (n from 10 to 300) in one call."""
    n, c = problems(rng, 50, 10, 300, 5)
    c[:5] = n[:5]  # every sample correct
    c[5:10] = 0  # none correct
    check(submission, n, c, 5, what="pass_at_k with n from 10 to 300, k = 5")


@pytest.mark.parametrize("k", [pytest.param(k, id=f"k-{k}") for k in (10, 100, 500, 1000)])
def test_large_n_no_overflow(submission, rng, k):
    """n = 2000 samples per problem: C(2000, k) overflows float64 from k = 230 on."""
    c = torch.from_numpy(rng.integers(0, 2001, size=30)).to(torch.int64)
    c[:4] = torch.tensor([1, 2, 2000 - k, 2000 - k + 1])  # around the n - c < k boundary too
    n = torch.full_like(c, 2000)
    check(submission, n, c, k, what=f"pass_at_k for n = 2000, k = {k}")


@pytest.mark.parametrize("n_samples", [pytest.param(200, id="n-200"), pytest.param(2000, id="n-2000")])
def test_small_values(submission, n_samples):
    """Few correct samples and small k: pass@k from 5e-4 to 0.1, where a float32 product cancels."""
    c = torch.tensor([1, 1, 2, 3, 5, 1, 2, 4, 1, 3])
    n = torch.full_like(c, n_samples)
    for k in (1, 2, 3):
        check(submission, n, c, k, what=f"pass_at_k for c from 1 to 5 of n = {n_samples}, k = {k}")


# ---------------------------------------------------------------------------- edge cases


def test_n_minus_c_below_k(submission):
    """Where n - c < k (every sample correct, or all but fewer than k), pass@k is exactly 1.0."""
    n = torch.tensor([10, 10, 10, 200, 200, 5, 7, 12])
    c = torch.tensor([10, 9, 7, 200, 197, 3, 7, 8])  # n - c = 0, 1, 3, 0, 3, 2, 0, and 4 (not below)
    check(submission, n, c, 4, what="pass_at_k where n - c < k (k = 4)", hint=NOT_ONE)


def test_no_correct_sample(submission):
    """c = 0: no draw of k samples holds a correct one, so pass@k is 0.0."""
    n = torch.tensor([1, 5, 200, 2000])
    c = torch.zeros(4, dtype=torch.int64)
    check(submission, n, c, 1, what="pass_at_k with c = 0")


def test_k_equals_one_is_the_fraction_correct(submission, rng):
    """pass@1 = c / n for every problem."""
    n, c = problems(rng, 40, 1, 500, 1)
    check(submission, n, c, 1, what="pass_at_k with k = 1")


def test_k_equals_n(submission):
    """k = n: all samples are drawn, so pass@k is 1.0 if any is correct and 0.0 otherwise."""
    n = torch.tensor([8, 8, 8, 8])
    c = torch.tensor([0, 1, 4, 8])
    check(submission, n, c, 8, what="pass_at_k with k = n", hint=NOT_ONE)


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.int64, id="int64"), pytest.param(torch.int32, id="int32")]
)
def test_integer_dtypes(submission, rng, dtype):
    """n and c as int64 or int32 tensors; the result is float64 either way."""
    n, c = problems(rng, 20, 20, 200, 10)
    got = submission.pass_at_k(n.to(dtype), c.to(dtype), 10)
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float64,
        "pass_at_k must return a float64 tensor",
        detail=f"got {getattr(got, 'dtype', type(got).__name__)}",
        hint="build the result in float64 (for instance torch.float64 factors), whatever the integer dtype",
    )
    check_values(got, n, c, 10, what=f"pass_at_k with {str(dtype).removeprefix('torch.')} n and c")


def test_one_problem(submission):
    """A single problem gives a tensor of shape (1,)."""
    check(submission, torch.tensor([200]), torch.tensor([37]), 10, what="pass_at_k for one problem")


def test_mean(submission, rng):
    """mean_pass_at_k is the mean of the per-problem values, as a Python float."""
    n, c = problems(rng, 60, 50, 250, 10)
    got = submission.mean_pass_at_k(n, c, 10)
    expect(
        isinstance(got, float),
        "mean_pass_at_k must return a Python float",
        detail=f"got {type(got).__name__}",
        hint="float(values.mean()) turns a 0-dim tensor into a Python float",
    )
    want = float(sum(exact(a, b, 10) for a, b in zip(n.tolist(), c.tolist(), strict=True)) / len(n))
    is_nan = isinstance(got, float) and math.isnan(got)  # then say which problems' values are NaN
    assert_close(
        got,
        want,
        what="mean_pass_at_k",
        rtol=RTOL,
        atol=ATOL,
        hint=nan_hint(submission.pass_at_k(n, c, 10), n, c, 10) if is_nan else "",
        misconceptions={BIASED: float(biased(n, c, 10).mean())},
    )


def test_inputs_unchanged(submission, rng):
    """pass_at_k leaves n and c as they were."""
    # Only the inputs are checked here: the values on such problems are checked by
    # test_different_n_per_problem.
    n, c = problems(rng, 30, 20, 200, 4)
    call_unchanged(submission.pass_at_k, n, c, 4, names=("n", "c", "k"), what="pass_at_k")


# ---------------------------------------------------------------------------- invalid inputs


@pytest.mark.hint(VALUE_ERROR_HINT)
@pytest.mark.parametrize(
    "n, c, k",
    [
        pytest.param([10, 4, 10], [3, 1, 0], 5, id="k-above-one-n"),
        pytest.param([10, 10], [3, 11], 2, id="c-above-n"),
        pytest.param([10, 10], [3, -1], 2, id="c-negative"),
        pytest.param([10, 10], [3, 4], 0, id="k-zero"),
        pytest.param([10, 10, 10], [3, 4], 2, id="shapes-differ"),
    ],
)
def test_invalid_inputs_raise(submission, n, c, k):
    """k > n, c > n, c < 0, k < 1 or n and c of different shapes raise ValueError."""
    try:
        submission.pass_at_k(torch.tensor(n), torch.tensor(c), k)
    except ValueError:
        return
    pytest.fail("pass_at_k returned normally on invalid arguments; it must raise ValueError")


# ---------------------------------------------------------------------------- vectorised

# n = 200, k = 10, c uniform, for 16, 64 and 256 problems: the reference issues the same ~25 tensor
# ops for every count (exponent 0); a loop over the problems issues a few per problem (exponent
# about 0.9). The limit is 0.3.
LOOP_HINT = (
    "the number of tensor operations grew with the number of problems: compute every problem's "
    "product at once (a (problems, factors) grid of denominators, masked where a problem has fewer "
    "factors), not one problem at a time"
)


@pytest.mark.performance
def test_vectorised_over_problems(perf):
    """The number of tensor operations does not grow with the number of problems (runner-reported)."""

    def make(rng, count):
        c = torch.from_numpy(rng.integers(0, 201, size=count)).to(torch.int64)
        return Call("pass_at_k", torch.full_like(c, 200), c, 10)

    perf.scaling("ops", make, hint=LOOP_HINT)
