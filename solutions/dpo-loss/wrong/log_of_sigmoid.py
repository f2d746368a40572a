# expect: failed
# why: computes the loss as -log(sigmoid(margin)): for margins below about -104 in float32 the sigmoid
#   underflows to 0, the loss is inf and the gradient NaN
# caught-by: test_large_margins, test_large_margin_gradients, test_very_negative_margin_is_finite
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
    loss = -torch.log(torch.sigmoid(chosen - rejected)).mean()
    return loss, chosen.detach(), rejected.detach()
