# expect: failed
# why: multiplies the loss by beta instead of the log-ratios inside the sigmoid: -beta * logsigmoid(margin)
# caught-by: test_against_the_formula, test_beta, test_worked_example
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
    chosen_logratios = sequence_logps(policy_chosen_logps, chosen_mask) - sequence_logps(
        ref_chosen_logps, chosen_mask
    )
    rejected_logratios = sequence_logps(policy_rejected_logps, rejected_mask) - sequence_logps(
        ref_rejected_logps, rejected_mask
    )
    loss = -beta * F.logsigmoid(chosen_logratios - rejected_logratios).mean()
    return loss, (beta * chosen_logratios).detach(), (beta * rejected_logratios).detach()
