# expect: failed
# why: sums the per-pair losses over the batch instead of averaging them
# caught-by: test_against_the_formula, test_loss_is_the_batch_mean, test_gradients
import torch
import torch.nn.functional as F


def sequence_logps(token_logps, mask):
    return torch.where(mask, token_logps, torch.zeros_like(token_logps)).sum(dim=-1)


def dpo_loss(
    policy_chosen_logps,
    policy_rejected_logps,
    ref_chosen_logps,
    ref_rejected_logps,
    chosen_mask,
    rejected_mask,
    beta=0.1,
):
    chosen = beta * (
        sequence_logps(policy_chosen_logps, chosen_mask) - sequence_logps(ref_chosen_logps, chosen_mask)
    )
    rejected = beta * (
        sequence_logps(policy_rejected_logps, rejected_mask)
        - sequence_logps(ref_rejected_logps, rejected_mask)
    )
    loss = -F.logsigmoid(chosen - rejected).sum()
    return loss, chosen.detach(), rejected.detach()
