# expect: failed
# why: returns the benchmark's mean pass@k (one number) where one value per problem is asked
# caught-by: test_several_problems, test_random_problems
import torch


def _check(n, c, k):
    if n.shape != c.shape:
        raise ValueError("n and c must have the same shape")
    if not isinstance(k, int) or k < 1:
        raise ValueError("k must be a positive integer")
    if bool((c < 0).any()) or bool((c > n).any()) or bool((n < k).any()):
        raise ValueError("need 0 <= c <= n and k <= n")


def per_problem(n, c, k):
    n, c = n.to(torch.int64), c.to(torch.int64)
    width = int(c.max())
    j = torch.arange(width)
    i = (n - c + 1).unsqueeze(-1) + j
    factors = torch.where(
        j < c.unsqueeze(-1), 1.0 - k / i.to(torch.float64), torch.ones((), dtype=torch.float64)
    )
    return torch.where(n - c < k, torch.ones((), dtype=torch.float64), 1.0 - factors.prod(dim=-1))


def pass_at_k(n, c, k):
    _check(n, c, k)
    return per_problem(n, c, k).mean()  # the mistake: averaged over the problems


def mean_pass_at_k(n, c, k):
    _check(n, c, k)
    return float(per_problem(n, c, k).mean())
