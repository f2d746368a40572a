# expect: failed
# why: masks by multiplying (logps * mask): right whenever the padding holds finite numbers, but
#   -inf * 0 is NaN, so a padding position at -inf poisons the whole row
# caught-by: test_padding_may_hold_minus_inf
import torch.nn.functional as F


def sequence_logps(token_logps, mask):
    return (token_logps * mask).sum(dim=-1)


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
