"""DDPM: the forward noising q(x_t | x_0) and one reverse sampling step, with a linear schedule.

Fill in the five functions below. Read README.md first: it explains every convention used here
(0-based timesteps as in diffusers' DDPMScheduler, float64 schedule, the two variance choices).
"""

import torch


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The linear schedule of Ho et al. (2020): torch.linspace(beta_start, beta_end, T) in float64.

    Returns a float64 tensor of shape (T,): betas[0] = beta_start, betas[T - 1] = beta_end.
    T < 1 raises ValueError.
    """
    raise NotImplementedError("linear_betas: a float64 linspace of T values")


def alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s) for t = 0 .. T-1: float64, shape (T,).

    Example: betas = [0.1, 0.2, 0.5] gives [0.9, 0.72, 0.36].
    """
    raise NotImplementedError("alpha_bars: the cumulative product of 1 - betas")


def posterior_variance(betas: torch.Tensor) -> torch.Tensor:
    """beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t, with alpha_bar_{-1} = 1.

    float64, shape (T,); its first entry is 0.
    Example: betas = [0.1, 0.2, 0.5] gives [0, 1/14, 7/32].
    """
    raise NotImplementedError("posterior_variance: beta_tilde for every t")


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Noise clean samples to timestep t in one jump (diffusers' DDPMScheduler.add_noise):

        x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise

    x0, noise: (B, ...) with any number of dims after the batch (also none), the same shape.
    t: int64 tensor of shape (B,), one timestep per sample, each in 0 .. T-1 (T = len(betas));
       any other value raises ValueError. Each sample's coefficients broadcast over its other dims.
    betas: the float64 schedule, shape (T,).

    Compute the coefficients in float64, cast them to x0's dtype, combine in that dtype. Returns a
    tensor of x0's shape and dtype. Leaves every argument unchanged.
    """
    raise NotImplementedError("q_sample: sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise")


def ddpm_step(
    x_t: torch.Tensor,
    t: torch.Tensor,
    eps_pred: torch.Tensor,
    noise: torch.Tensor,
    betas: torch.Tensor,
    *,
    variance: str = "fixed_small",
) -> torch.Tensor:
    """One reverse DDPM step from timestep t to t - 1, from the predicted noise (epsilon form):

        mean    = 1 / sqrt(alpha_t) * (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_pred)
        x_{t-1} = mean + sigma_t * noise

    alpha_t = 1 - beta_t (one step; not alpha_bar_t). No clipping of any predicted x0.
    sigma_t = sqrt(beta_tilde_t) for variance="fixed_small" (posterior_variance, the default),
              sqrt(beta_t)       for variance="fixed_large";
    any other variance raises ValueError. sigma_t = 0 where t = 0: the last step adds no noise.

    x_t, eps_pred, noise: (B, ...), the same shape; t: int64 (B,), each in 0 .. T-1 (else
    ValueError), samples may be at different timesteps; betas: the float64 schedule (T,).

    Compute the coefficients in float64, cast them to x_t's dtype, combine in that dtype. Returns a
    tensor of x_t's shape and dtype. Leaves every argument unchanged (no x_t -= ...).
    """
    raise NotImplementedError("ddpm_step: the posterior mean plus sigma_t * noise")
