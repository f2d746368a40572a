# expect: failed
# why: the biased estimator 1 - (1 - c/n)^k (drawing k samples with replacement): right for k = 1,
#   where it is c/n, too low for every k > 1
# caught-by: test_worked_example, test_random_problems
import torch


def _check(n, c, k):
    if n.shape != c.shape:
        raise ValueError("n and c must have the same shape")
    if not isinstance(k, int) or k < 1:
        raise ValueError("k must be a positive integer")
    if bool((c < 0).any()) or bool((c > n).any()) or bool((n < k).any()):
        raise ValueError("need 0 <= c <= n and k <= n")


def pass_at_k(n, c, k):
    _check(n, c, k)
    p = c.to(torch.float64) / n.to(torch.float64)
    return 1.0 - (1.0 - p) ** k


def mean_pass_at_k(n, c, k):
    return float(pass_at_k(n, c, k).mean())
