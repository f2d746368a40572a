# expect: failed
# why: returns the rewards still attached to the graph: anything that backpropagates through the
#   logged metrics moves the policy
# caught-by: test_rewards_are_detached
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
    loss = -F.logsigmoid(chosen - rejected).mean()
    return loss, chosen, rejected
