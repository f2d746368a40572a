"""pass@k: the reference solution."""

import torch


def _check(n: torch.Tensor, c: torch.Tensor, k: int) -> None:
    if n.shape != c.shape:
        raise ValueError(f"n and c must have the same shape, got {tuple(n.shape)} and {tuple(c.shape)}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if bool((c < 0).any()) or bool((c > n).any()):
        raise ValueError("every c must be between 0 and its n")
    if bool((n < k).any()):
        raise ValueError(f"k = {k} is larger than some n: pass@k needs at least k samples")


def pass_at_k(n: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """The unbiased pass@k of every problem: 1 - prod_{i = n-c+1}^{n} (1 - k / i), float64."""
    _check(n, c, k)
    n = n.to(torch.int64)
    c = c.to(torch.int64)
    width = int(c.max()) if c.numel() else 0
    j = torch.arange(width)  # the j-th factor of every problem's product
    i = (n - c + 1).unsqueeze(-1) + j  # (P, width): the denominators n-c+1 .. n, then padding
    used = j < c.unsqueeze(-1)  # a problem with c correct samples has c factors
    factors = torch.where(used, 1.0 - k / i.to(torch.float64), torch.ones((), dtype=torch.float64))
    # with n - c < k every size-k subset holds a correct sample: pass@k is exactly 1
    return torch.where(n - c < k, torch.ones((), dtype=torch.float64), 1.0 - factors.prod(dim=-1))


def mean_pass_at_k(n: torch.Tensor, c: torch.Tensor, k: int) -> float:
    """The benchmark's pass@k: the mean over problems of pass_at_k, as a Python float."""
    return float(pass_at_k(n, c, k).mean())
