# expect: failed
# why: forms the binomial coefficients in float64 (exp of log-gamma, the usual way to get C(n, k)
#   as a float): fine for n = 200, but C(2000, 500) is inf and inf / inf is NaN
# caught-by: test_large_n_no_overflow
import torch


def _check(n, c, k):
    if n.shape != c.shape:
        raise ValueError("n and c must have the same shape")
    if not isinstance(k, int) or k < 1:
        raise ValueError("k must be a positive integer")
    if bool((c < 0).any()) or bool((c > n).any()) or bool((n < k).any()):
        raise ValueError("need 0 <= c <= n and k <= n")


def binomial(a, b):
    """C(a, b) as a float64, 0 where b > a."""
    a, b = a.to(torch.float64), b.to(torch.float64) if isinstance(b, torch.Tensor) else float(b)
    log = torch.lgamma(a + 1) - torch.lgamma(a - b + 1) - torch.lgamma(torch.as_tensor(b + 1.0))
    return torch.where(a >= b, torch.exp(log), torch.zeros((), dtype=torch.float64))


def pass_at_k(n, c, k):
    _check(n, c, k)
    return 1.0 - binomial(n - c, k) / binomial(n, k)


def mean_pass_at_k(n, c, k):
    return float(pass_at_k(n, c, k).mean())
