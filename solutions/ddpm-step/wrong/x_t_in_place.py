# expect: failed
# why: computes the mean in place on x_t (x_t.sub_(...), then mul_): the output is right, but the
#   caller's x_t is overwritten, and so is every tensor that shares its memory
# caught-by: test_arguments_unchanged

import torch

VARIANCES = ("fixed_small", "fixed_large")


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """betas_t = linspace(beta_start, beta_end, T), in float64: shape (T,)."""
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), in float64: shape (T,)."""
    return torch.cumprod(1.0 - betas.to(torch.float64), dim=0)


def posterior_variance(betas: torch.Tensor) -> torch.Tensor:
    """beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t, alpha_bar_{-1} = 1: (T,)."""
    betas = betas.to(torch.float64)
    ab = alpha_bars(betas)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])  # alpha_bar_{t-1}
    return (1.0 - ab_prev) / (1.0 - ab) * betas


def _check_t(t: torch.Tensor, T: int) -> None:
    if t.dim() != 1:
        raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}")
    if bool(((t < 0) | (t >= T)).any()):
        raise ValueError(f"every t must be in 0..{T - 1}")


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) float64 coefficients -> (B, 1, ..., 1) in like's dtype, to broadcast over a sample."""
    return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, one t per sample."""
    _check_t(t, betas.shape[0])
    ab = alpha_bars(betas)[t]  # (B,) float64: the coefficients are computed in float64
    a = _per_sample(ab.sqrt(), x0)
    s = _per_sample((1.0 - ab).sqrt(), x0)
    return a * x0 + s * noise


def ddpm_step(
    x_t: torch.Tensor,
    t: torch.Tensor,
    eps_pred: torch.Tensor,
    noise: torch.Tensor,
    betas: torch.Tensor,
    *,
    variance: str = "fixed_small",
) -> torch.Tensor:
    """x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_pred) + sigma_t noise,
    with sigma_t = 0 where t = 0."""
    if variance not in VARIANCES:
        raise ValueError(f"variance must be 'fixed_small' or 'fixed_large', got {variance!r}")
    _check_t(t, betas.shape[0])
    betas = betas.to(torch.float64)
    beta = betas[t]  # (B,) float64
    ab = alpha_bars(betas)[t]
    var = posterior_variance(betas)[t] if variance == "fixed_small" else beta
    sigma = torch.where(t > 0, var.sqrt(), torch.zeros_like(var))  # no noise at t = 0

    inv_sqrt_alpha = _per_sample(1.0 / (1.0 - beta).sqrt(), x_t)  # 1 / sqrt(alpha_t), not alpha_bar
    eps_coef = _per_sample(beta / (1.0 - ab).sqrt(), x_t)
    mean = x_t.sub_(eps_coef * eps_pred).mul_(inv_sqrt_alpha)  # the mistake: in place
    return mean + _per_sample(sigma, x_t) * noise
