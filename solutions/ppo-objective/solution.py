"""The PPO objective of RLHF, per token: the clipped surrogate of the policy, the clipped value
loss, and their clip fractions, averaged over the response tokens of the whole batch (the
formulas of TRL's PPOTrainer)."""

import torch


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    # float64 stays float64; float32, float16 and bfloat16 are computed in float32
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _select(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where, not a product: a masked-out position may hold inf or NaN, and inf * 0 is NaN. Selecting
    # BEFORE any exp or square also keeps the gradient there exactly 0 (never 0 * inf = NaN).
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # one mean over every masked-in token of the batch: a row's weight is its number of tokens
    return _select(values, mask).sum() / mask.sum()


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = _work_dtype(logprobs)
    logprobs = logprobs.to(dtype)
    old_logprobs = old_logprobs.detach().to(dtype)  # constants of the rollout
    advantages = _select(advantages.detach().to(dtype), mask)
    log_ratio = _select(logprobs - old_logprobs, mask)  # 0 (ratio 1) outside the mask
    ratio = torch.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    pg_clipfrac = masked_mean(torch.gt(pg_losses2, pg_losses).to(dtype), mask)
    return pg_loss, pg_clipfrac


def value_loss(
    vpreds: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = _work_dtype(vpreds)
    vpreds = _select(vpreds.to(dtype), mask)
    old_values = _select(old_values.detach().to(dtype), mask)
    returns = _select(returns.detach().to(dtype), mask)
    # the new prediction may move at most cliprange_value away from the OLD prediction
    vpredclipped = torch.clamp(vpreds, old_values - cliprange_value, old_values + cliprange_value)
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    vf_clipfrac = masked_mean(torch.gt(vf_losses2, vf_losses1).to(dtype), mask)
    return vf_loss, vf_clipfrac


def ppo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    vpreds: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float = 0.2,
    cliprange_value: float = 0.2,
    vf_coef: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    pg_loss, pg_clipfrac = policy_loss(logprobs, old_logprobs, advantages, mask, cliprange)
    vf_loss, vf_clipfrac = value_loss(vpreds, old_values, returns, mask, cliprange_value)
    return pg_loss + vf_coef * vf_loss, pg_loss, vf_loss, pg_clipfrac, vf_clipfrac
