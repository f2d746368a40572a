"""The PPO objective of RLHF: the clipped surrogate, the clipped value loss and the clip fractions,
per token over a padded batch, as TRL's PPOTrainer computes them.

Save this file as ppo.py and fill in the four functions. Read README.md first: it explains every
convention used here.
"""

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One mean over every position of the batch where mask is True.

    values: (B, T) float; mask: (B, T) bool, True at the response tokens, with at least one True.
    Returns a 0-dim tensor of values' dtype: sum(values where mask) / (number of True entries).
    Not a mean of per-row means, and not a mean over all B * T positions. Positions where mask is
    False may hold anything (inf, NaN): select with torch.where, never multiply by the mask.
    """
    raise NotImplementedError("masked_mean: sum where mask is True, divided by the count of True")


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate loss and its clip fraction (TRL's PPOTrainer).

    logprobs:     (B, T) log-probabilities of the response tokens under the policy being trained
                  (the only input that carries a gradient).
    old_logprobs: (B, T) the same under the policy that sampled them (a constant).
    advantages:   (B, T) per-token advantages (a constant).
    mask:         (B, T) bool, True at the response tokens.

        ratio       = exp(logprobs - old_logprobs)
        pg_losses   = -advantages * ratio
        pg_losses2  = -advantages * clamp(ratio, 1 - cliprange, 1 + cliprange)
        pg_loss     = masked_mean(max(pg_losses, pg_losses2), mask)
        pg_clipfrac = masked_mean(pg_losses2 > pg_losses, mask)       (strictly greater)

    Returns (pg_loss, pg_clipfrac), two 0-dim tensors: float64 for float64 inputs, float32 for
    float32, float16 and bfloat16 inputs (compute those in float32). No gradient reaches
    old_logprobs or advantages, even if they require one (detach them). Positions where mask is
    False may hold any value, inf and NaN included: they change no result and get a gradient of
    exactly 0 (select with torch.where BEFORE the exp). The inputs are left unchanged.
    """
    raise NotImplementedError("policy_loss: ratio, clipped surrogate, masked mean, clip fraction")


def value_loss(
    vpreds: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped value loss and its clip fraction (TRL's PPOTrainer).

    vpreds:     (B, T) the value head's new predictions (the only input that carries a gradient).
    old_values: (B, T) its predictions at rollout time (a constant).
    returns:    (B, T) the targets (a constant).
    mask:       (B, T) bool, True at the response tokens.

        vpredclipped = clamp(vpreds, old_values - cliprange_value, old_values + cliprange_value)
        vf_losses1   = (vpreds - returns) ** 2
        vf_losses2   = (vpredclipped - returns) ** 2
        vf_loss      = 0.5 * masked_mean(max(vf_losses1, vf_losses2), mask)
        vf_clipfrac  = masked_mean(vf_losses2 > vf_losses1, mask)     (strictly greater)

    Returns (vf_loss, vf_clipfrac), with the same conventions as policy_loss: dtypes, no gradient
    to old_values and returns, padding that may hold anything, inputs left unchanged.
    """
    raise NotImplementedError("value_loss: clip around old_values, max of squared errors, masked mean")


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
    """The whole PPO loss of a batch.

    Returns (loss, pg_loss, vf_loss, pg_clipfrac, vf_clipfrac), five 0-dim tensors, where
    loss = pg_loss + vf_coef * vf_loss, and the four parts are those of policy_loss and
    value_loss with the same mask. Gradients flow from loss to logprobs and vpreds only.
    """
    raise NotImplementedError("ppo_loss: policy_loss + vf_coef * value_loss, and the four parts")
