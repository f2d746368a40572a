"""The DPO loss: preferences turned into a classification loss on log-probability ratios.

Save this file as dpo.py and fill in the two functions. Read README.md first: it explains every
convention used here.
"""

import torch
import torch.nn.functional as F  # noqa: F401  (F.logsigmoid is what you need)


def sequence_logps(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The log-probability of each response: the sum of its tokens' log-probabilities.

    token_logps: (B, T) float, the log-probability of each token of each sequence.
    mask:        (B, T) bool, True at the response tokens; False at the prompt and the padding.
    Returns (B,): for each row, the sum of token_logps where mask is True. Nothing else counts,
    and a position where mask is False may hold any value, even -inf (select the response
    tokens, e.g. with torch.where; multiplying by the mask turns -inf into NaN).
    token_logps and mask are left unchanged (no masked_fill_, no assignment into them).
    """
    raise NotImplementedError("sequence_logps: sum the log-probs of the response tokens")


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss of a batch of B preference pairs.

    policy_chosen_logps, ref_chosen_logps:     (B, T_c) per-token log-probs of the chosen
        sequences, under the policy being trained and under the frozen reference model.
    policy_rejected_logps, ref_rejected_logps: (B, T_r) the same for the rejected sequences.
    chosen_mask (B, T_c), rejected_mask (B, T_r): bool, True at the response tokens.
    T_c and T_r may differ; so may the prompt and response lengths of every row.

    Returns (loss, chosen_rewards, rejected_rewards):
        chosen_rewards   = beta * (sequence_logps(policy_chosen) - sequence_logps(ref_chosen))      (B,)
        rejected_rewards = beta * (sequence_logps(policy_rejected) - sequence_logps(ref_rejected))  (B,)
        loss = mean over the batch of -logsigmoid(chosen_rewards - rejected_rewards)               ()
    The rewards are returned detached (they are for logging); the loss carries the gradient.
    Everything has the dtype of the log-probs (float32 or float64). The inputs are left unchanged.

    Numerically stable: margins of +-1e4 in float32 give a finite loss and finite gradients,
    so use F.logsigmoid, never torch.log(torch.sigmoid(...)).
    """
    raise NotImplementedError("dpo_loss: implicit rewards, then -logsigmoid of their difference")
