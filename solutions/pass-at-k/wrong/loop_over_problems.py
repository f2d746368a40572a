# expect: too_slow
# why: correct, but computes the problems one at a time in a Python loop (the paper's per-problem
#   function called for each), so the number of tensor operations grows with the number of problems
# caught-by: test_vectorised_over_problems
import torch


def _check(n, c, k):
    if n.shape != c.shape:
        raise ValueError("n and c must have the same shape")
    if not isinstance(k, int) or k < 1:
        raise ValueError("k must be a positive integer")
    if bool((c < 0).any()) or bool((c > n).any()) or bool((n < k).any()):
        raise ValueError("need 0 <= c <= n and k <= n")


def one_problem(n, c, k):
    if n - c < k:
        return torch.ones((), dtype=torch.float64)
    return 1.0 - torch.prod(1.0 - k / torch.arange(n - c + 1, n + 1, dtype=torch.float64))


def pass_at_k(n, c, k):
    _check(n, c, k)
    return torch.stack([one_problem(int(a), int(b), k) for a, b in zip(n, c, strict=True)])


def mean_pass_at_k(n, c, k):
    return float(pass_at_k(n, c, k).mean())
