"""Direct Preference Optimization: a classification loss on pairs of completions, from per-token
log-probabilities of the policy and of a frozen reference model."""

import torch
import torch.nn.functional as F


def sequence_logps(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # (B, T) -> (B,): log p(response | prompt) is the sum over the response tokens only.
    # where, not a product: a masked-out position may hold -inf, and -inf * 0 is NaN
    return torch.where(mask, token_logps, torch.zeros_like(token_logps)).sum(dim=-1)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # log p(response | prompt) of each whole response, under each model: (B,) each
    policy_chosen = sequence_logps(policy_chosen_logps, chosen_mask)
    policy_rejected = sequence_logps(policy_rejected_logps, rejected_mask)
    ref_chosen = sequence_logps(ref_chosen_logps, chosen_mask)
    ref_rejected = sequence_logps(ref_rejected_logps, rejected_mask)
    # the implicit rewards: beta * log(pi / pi_ref)
    chosen_rewards = beta * (policy_chosen - ref_chosen)  # (B,)
    rejected_rewards = beta * (policy_rejected - ref_rejected)  # (B,)
    # -log sigmoid(margin), stably: logsigmoid never takes the log of a sigmoid that underflowed to 0
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()  # ()
    # the rewards are for logging (reward accuracy, margins): no gradient flows through them
    return loss, chosen_rewards.detach(), rejected_rewards.detach()
