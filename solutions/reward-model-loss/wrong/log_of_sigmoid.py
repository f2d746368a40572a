# expect: failed
# why: computes -log(sigmoid(d)) as written: sigmoid of a large negative difference underflows to 0,
#   so the loss is inf (and the gradient NaN) at d = -1000 (from d = -89 in float32, -17.5 in float16)
# caught-by: test_large_gaps, test_large_gap_gradients, test_large_gap_is_finite
import torch


def pairwise_loss(r_chosen, r_rejected, margin=None):
    d = r_chosen - r_rejected
    if margin is not None:
        d = d - margin
    return -torch.log(torch.sigmoid(d)).mean()


def pairwise_accuracy(r_chosen, r_rejected):
    return (r_chosen > r_rejected).to(torch.float32).mean()


def last_token_rewards(values, attention_mask):
    positions = torch.arange(values.shape[-1])
    last = torch.where(attention_mask.to(torch.bool), positions, -1).amax(dim=-1)
    return values.gather(-1, last.unsqueeze(-1)).squeeze(-1)
