# expect: failed
# why: counts a pair as correct when r_chosen >= r_rejected, so ties count as correct rankings and a
#   constant reward head has accuracy 1
# caught-by: test_accuracy_with_ties, test_accuracy_all_ties, test_accuracy_worked_example
import torch
import torch.nn.functional as F


def pairwise_loss(r_chosen, r_rejected, margin=None):
    d = r_chosen - r_rejected
    if margin is not None:
        d = d - margin
    return -F.logsigmoid(d).mean()


def pairwise_accuracy(r_chosen, r_rejected):
    return (r_chosen >= r_rejected).to(torch.float32).mean()


def last_token_rewards(values, attention_mask):
    positions = torch.arange(values.shape[-1])
    last = torch.where(attention_mask.to(torch.bool), positions, -1).amax(dim=-1)
    return values.gather(-1, last.unsqueeze(-1)).squeeze(-1)
