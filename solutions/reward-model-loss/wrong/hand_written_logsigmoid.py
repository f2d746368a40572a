# expect: failed
# why: writes the stable formula out by hand, min(d, 0) - log1p(exp(-|d|)): the values are right
#   everywhere, but autograd takes one side of the kinks of min and abs, so at d - margin = 0 (a tie)
#   the slope is 1 instead of sigmoid(0) = 1/2 and the gradient there is twice what it should be
# caught-by: test_gradients, test_gradients_without_margin
import torch


def pairwise_loss(r_chosen, r_rejected, margin=None):
    d = r_chosen - r_rejected
    if margin is not None:
        d = d - margin
    logsigmoid = torch.clamp(d, max=0) - torch.log1p(torch.exp(-d.abs()))
    return -logsigmoid.mean()


def pairwise_accuracy(r_chosen, r_rejected):
    return (r_chosen > r_rejected).to(torch.float32).mean()


def last_token_rewards(values, attention_mask):
    positions = torch.arange(values.shape[-1])
    last = torch.where(attention_mask.to(torch.bool), positions, -1).amax(dim=-1)
    return values.gather(-1, last.unsqueeze(-1)).squeeze(-1)
