# expect: failed
# why: selects the response tokens with masked_fill_ (in place), which zeroes the prompt and the
#   padding of the caller's own log-prob tensors; the sums, rewards and loss are right
# caught-by: test_sequence_logps_leaves_its_inputs_unchanged, test_dpo_loss_leaves_its_inputs_unchanged
import torch.nn.functional as F


def sequence_logps(token_logps, mask):
    return token_logps.masked_fill_(~mask, 0.0).sum(dim=-1)


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
