# expect: failed
# why: writes the stable logsigmoid out by hand, min(m, 0) - log1p(exp(-|m|)): the values are right
#   at every margin, but autograd takes one side of the kinks of clamp and abs at m = 0 and gives
#   the slope 1 instead of sigmoid(0) = 1/2 there, where DPO starts (policy = reference)
# caught-by: test_gradients_at_margin_zero
import torch


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
    margin = chosen - rejected
    logsigmoid = torch.clamp(margin, max=0) - torch.log1p(torch.exp(-margin.abs()))
    return -logsigmoid.mean(), chosen.detach(), rejected.detach()
