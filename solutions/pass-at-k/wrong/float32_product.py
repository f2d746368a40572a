# expect: failed
# why: translates the paper's numpy line to torch as it stands: k / torch.arange(...) of integers
#   is float32 in torch (float64 in numpy), so the product close to 1 loses the small pass@k values
#   to float32 rounding (the result is cast to float64 at the end)
# caught-by: test_small_values
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
    factors = torch.where(j < c.unsqueeze(-1), 1.0 - k / i, torch.ones(()))  # the mistake: float32
    out = torch.where(n - c < k, torch.ones(()), 1.0 - factors.prod(dim=-1))
    return out.to(torch.float64)


def mean_pass_at_k(n, c, k):
    return float(pass_at_k(n, c, k).mean())
