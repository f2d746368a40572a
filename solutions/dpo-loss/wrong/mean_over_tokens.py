# expect: failed
# why: averages the log-probs over the response tokens (a length-normalised score) instead of summing them
# caught-by: test_sequence_logps, test_against_the_formula, test_worked_example
import torch
import torch.nn.functional as F


def sequence_logps(token_logps, mask):
    masked = torch.where(mask, token_logps, torch.zeros_like(token_logps))
    return masked.sum(dim=-1) / mask.sum(dim=-1)


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
    loss = -F.logsigmoid(chosen - rejected).mean()
    return loss, chosen.detach(), rejected.detach()
