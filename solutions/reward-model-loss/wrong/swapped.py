# expect: failed
# why: the difference is taken the other way round, r_rejected - r_chosen: the model is trained to
#   prefer the rejected answers
# caught-by: test_loss_random_batches, test_worked_example, test_gradients
import torch
import torch.nn.functional as F


def pairwise_loss(r_chosen, r_rejected, margin=None):
    d = r_rejected - r_chosen
    if margin is not None:
        d = d - margin
    return -F.logsigmoid(d).mean()


def pairwise_accuracy(r_chosen, r_rejected):
    return (r_chosen > r_rejected).to(torch.float32).mean()


def last_token_rewards(values, attention_mask):
    positions = torch.arange(values.shape[-1])
    last = torch.where(attention_mask.to(torch.bool), positions, -1).amax(dim=-1)
    return values.gather(-1, last.unsqueeze(-1)).squeeze(-1)
