"""pass@k, the unbiased estimator of the Codex paper, for every problem of a benchmark at once.
Read README.md first: it explains every convention used here.
"""

import torch


def pass_at_k(n: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """The unbiased pass@k of every problem (Chen et al., 2021):

        pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i)

    and exactly 1.0 where n - c < k (every draw of k samples holds a correct one).

    n: integer tensor (P,), the number of samples generated for each of P >= 1 problems.
    c: integer tensor (P,), how many of those samples are correct.
    k: Python int, 1 <= k.
    Returns a float64 tensor (P,): one estimate per problem (not their mean).

    Raise ValueError when n and c differ in shape, k < 1, some c < 0 or c > n, or some n < k.
    Never form the binomial coefficients themselves: C(2000, 1000) is about 1e600, far past float64.
    Compute in float64 throughout; leave n and c as they were.
    Vectorised: a fixed number of tensor operations whatever P (no loop over the problems).
    """
    raise NotImplementedError("pass_at_k: 1 - prod(1 - k / i) for i = n-c+1 .. n, every problem at once")


def mean_pass_at_k(n: torch.Tensor, c: torch.Tensor, k: int) -> float:
    """The benchmark's pass@k: the mean over the problems of pass_at_k(n, c, k), as a Python float."""
    raise NotImplementedError("mean_pass_at_k: the mean of pass_at_k's values")
