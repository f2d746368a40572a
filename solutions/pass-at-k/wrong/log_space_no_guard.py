# expect: failed
# why: sums log(1 - k/i) over i = n-c+1 .. n (a log-space product) without the n - c < k case:
#   there the range reaches i <= k, log(0) is -inf and log of a negative factor is NaN
# caught-by: test_n_minus_c_below_k, test_random_problems
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
    n, c = n.to(torch.int64), c.to(torch.int64)
    width = int(c.max())
    j = torch.arange(width)
    i = (n - c + 1).unsqueeze(-1) + j
    terms = torch.log1p(-k / i.to(torch.float64))
    log_prod = torch.where(j < c.unsqueeze(-1), terms, torch.zeros((), dtype=torch.float64)).sum(dim=-1)
    return -torch.expm1(log_prod)  # the mistake: no 1.0 where n - c < k


def mean_pass_at_k(n, c, k):
    return float(pass_at_k(n, c, k).mean())
