# expect: failed
# why: the margin is rejected - chosen: the loss pushes the rejected responses up
# caught-by: test_against_the_formula, test_worked_example, test_gradients
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
    loss = -F.logsigmoid(rejected - chosen).mean()
    return loss, chosen.detach(), rejected.detach()
