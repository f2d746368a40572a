# expect: failed
# why: computes the per-token terms on the raw inputs and selects the response tokens only in the
#   final mean, with torch.where: the values are right whatever the padding holds, but backward
#   multiplies the zero gradient of a padding position by the derivative of exp or of the square
#   there, and 0 * inf = NaN reaches the gradients of logprobs and vpreds
# caught-by: test_padding_gradients
import torch


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype)).sum() / mask.sum()


def policy_loss(logprobs, old_logprobs, advantages, mask, cliprange=0.2):
    dtype = _work_dtype(logprobs)
    ratio = torch.exp(logprobs.to(dtype) - old_logprobs.detach().to(dtype))
    advantages = advantages.detach().to(dtype)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    pg_clipfrac = masked_mean(torch.gt(pg_losses2, pg_losses).to(dtype), mask)
    return pg_loss, pg_clipfrac


def value_loss(vpreds, old_values, returns, mask, cliprange_value=0.2):
    dtype = _work_dtype(vpreds)
    vpreds = vpreds.to(dtype)
    old_values = old_values.detach().to(dtype)
    returns = returns.detach().to(dtype)
    vpredclipped = torch.clamp(vpreds, old_values - cliprange_value, old_values + cliprange_value)
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    vf_clipfrac = masked_mean(torch.gt(vf_losses2, vf_losses1).to(dtype), mask)
    return vf_loss, vf_clipfrac


def ppo_loss(
    logprobs,
    old_logprobs,
    advantages,
    vpreds,
    old_values,
    returns,
    mask,
    cliprange=0.2,
    cliprange_value=0.2,
    vf_coef=0.1,
):
    pg_loss, pg_clipfrac = policy_loss(logprobs, old_logprobs, advantages, mask, cliprange)
    vf_loss, vf_clipfrac = value_loss(vpreds, old_values, returns, mask, cliprange_value)
    return pg_loss + vf_coef * vf_loss, pg_loss, vf_loss, pg_clipfrac, vf_clipfrac
