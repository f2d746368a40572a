# expect: failed
# why: the product's range is one too low, i = n-c .. n-1 instead of n-c+1 .. n (numpy's
#   arange(n - c + 1, n + 1) rewritten as arange(n - c, n))
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
    n, c = n.to(torch.int64), c.to(torch.int64)
    width = int(c.max())
    j = torch.arange(width)
    i = (n - c).unsqueeze(-1) + j  # the mistake: starts at n - c
    used = j < c.unsqueeze(-1)
    factors = torch.where(
        used, 1.0 - k / i.clamp_min(1).to(torch.float64), torch.ones((), dtype=torch.float64)
    )
    return torch.where(n - c < k, torch.ones((), dtype=torch.float64), 1.0 - factors.prod(dim=-1))


def mean_pass_at_k(n, c, k):
    return float(pass_at_k(n, c, k).mean())
