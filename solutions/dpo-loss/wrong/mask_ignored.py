# expect: failed
# why: sums the log-probs of every position, prompt and padding included, instead of the response
#   tokens only (the prompt cancels in the margin, the padding does not, and both shift the rewards)
# caught-by: test_sequence_logps, test_against_the_formula, test_positions_outside_the_masks_do_not_matter
import torch.nn.functional as F


def sequence_logps(token_logps, mask):
    return token_logps.sum(dim=-1)


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
