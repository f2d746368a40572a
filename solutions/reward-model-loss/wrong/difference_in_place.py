# expect: failed
# why: d = r_chosen names the caller's tensor, not a copy, so d -= r_rejected and d -= margin
#   overwrite the caller's chosen rewards (and fail under autograd on a leaf that requires grad)
# caught-by: test_inputs_unchanged
import torch
import torch.nn.functional as F


def pairwise_loss(r_chosen, r_rejected, margin=None):
    d = r_chosen
    d -= r_rejected
    if margin is not None:
        d -= margin
    return -F.logsigmoid(d).mean()


def pairwise_accuracy(r_chosen, r_rejected):
    return (r_chosen > r_rejected).to(torch.float32).mean()


def last_token_rewards(values, attention_mask):
    positions = torch.arange(values.shape[-1])
    last = torch.where(attention_mask.to(torch.bool), positions, -1).amax(dim=-1)
    return values.gather(-1, last.unsqueeze(-1)).squeeze(-1)
