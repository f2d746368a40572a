"""Public tests: the worked example of README.md and other small cases you can check by hand.

Run them with `grader test pass-at-k pass_at_k.py`.
"""

import torch

from grader.testing import assert_close, expect

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
VALUE_ERROR_HINT = (
    "check the arguments before computing and raise ValueError: n and c of one shape, k >= 1, "
    "0 <= c <= n and k <= n for every problem"
)
RTOL, ATOL = 1e-7, 1e-12

# the worked example: one problem, n = 5 samples of which c = 2 are correct
N = torch.tensor([5])
C = torch.tensor([2])


def test_pass_at_1_is_the_fraction_correct(submission):
    """n = 5, c = 2, k = 1: pass@1 = 1 - 3/5 = c/n = 0.4."""
    assert_close(
        submission.pass_at_k(N, C, 1),
        torch.tensor([0.4], dtype=torch.float64),
        what="pass_at_k(n=[5], c=[2], k=1)",
        rtol=RTOL,
        atol=ATOL,
        misconceptions={
            OFF_BY_ONE: torch.tensor([0.5], dtype=torch.float64),
            MEAN_RETURNED: torch.tensor(0.4, dtype=torch.float64),
        },
    )


def test_worked_example(submission):
    """n = 5, c = 2: pass@2 = 1 - C(3,2)/C(5,2) = 0.7 and pass@3 = 1 - C(3,3)/C(5,3) = 0.9."""
    assert_close(
        submission.pass_at_k(N, C, 2),
        torch.tensor([0.7], dtype=torch.float64),
        what="pass_at_k(n=[5], c=[2], k=2)",
        rtol=RTOL,
        atol=ATOL,
        misconceptions={
            BIASED: torch.tensor([0.64], dtype=torch.float64),
            OFF_BY_ONE: torch.tensor([5 / 6], dtype=torch.float64),
            MEAN_RETURNED: torch.tensor(0.7, dtype=torch.float64),
        },
    )
    assert_close(
        submission.pass_at_k(N, C, 3),
        torch.tensor([0.9], dtype=torch.float64),
        what="pass_at_k(n=[5], c=[2], k=3)",
        rtol=RTOL,
        atol=ATOL,
        misconceptions={
            BIASED: torch.tensor([0.784], dtype=torch.float64),
            OFF_BY_ONE: torch.tensor([1.0], dtype=torch.float64),
        },
    )


def test_n_minus_c_below_k(submission):
    """n = 5, c = 2, k = 4: n - c = 3 < 4, so every draw of 4 holds a correct sample: 1.0."""
    assert_close(
        submission.pass_at_k(N, C, 4),
        torch.tensor([1.0], dtype=torch.float64),
        what="pass_at_k(n=[5], c=[2], k=4)",
        rtol=RTOL,
        atol=ATOL,
        hint=NOT_ONE,
        misconceptions={
            BIASED: torch.tensor([1 - 0.6**4], dtype=torch.float64),
            MEAN_RETURNED: torch.tensor(1.0, dtype=torch.float64),
        },
    )


def test_several_problems(submission):
    """Four problems at once, k = 2: [0.7, 0.0, 1.0, 2/3]; their mean is 0.591667."""
    n = torch.tensor([5, 5, 10, 3])
    c = torch.tensor([2, 0, 10, 1])
    got = submission.pass_at_k(n, c, 2)
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float64,
        "pass_at_k must return a float64 tensor",
        detail=f"got {getattr(got, 'dtype', type(got).__name__)}",
        hint="build the result in float64 (for instance torch.float64 factors)",
    )
    want = torch.tensor([0.7, 0.0, 1.0, 2 / 3], dtype=torch.float64)
    assert_close(
        got,
        want,
        what="pass_at_k for n = [5, 5, 10, 3], c = [2, 0, 10, 1], k = 2",
        rtol=RTOL,
        atol=ATOL,
        # the third problem has n - c = 0 < k
        hint=NOT_ONE if got.shape == (4,) and not bool(torch.isfinite(got[2])) else "",
        misconceptions={
            MEAN_RETURNED: want.mean(),
            BIASED: torch.tensor([0.64, 0.0, 1.0, 5 / 9], dtype=torch.float64),
        },
    )
    mean = submission.mean_pass_at_k(n, c, 2)
    expect(
        isinstance(mean, float),
        "mean_pass_at_k must return a Python float",
        detail=f"got {type(mean).__name__}",
        hint="float(values.mean()) turns a 0-dim tensor into a Python float",
    )
    assert_close(mean, float(want.mean()), what="mean_pass_at_k", rtol=RTOL, atol=ATOL)


def test_k_above_n_raises(submission):
    """k = 6 with only n = 5 samples: pass@6 is undefined, so pass_at_k raises ValueError."""
    try:
        submission.pass_at_k(N, C, 6)
    except ValueError:
        return
    expect(
        False,
        "pass_at_k(n=[5], c=[2], k=6) returned normally; it must raise ValueError",
        hint=VALUE_ERROR_HINT,
    )
