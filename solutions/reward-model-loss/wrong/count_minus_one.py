# expect: failed
# why: reads the reward at index mask.sum() - 1 (the number of real tokens minus one): right under
#   right padding, but under left padding the real tokens end at T - 1, not there
# caught-by: test_last_token_rewards, test_last_token_left_padding, test_one_real_token
import torch
import torch.nn.functional as F


def pairwise_loss(r_chosen, r_rejected, margin=None):
    d = r_chosen - r_rejected
    if margin is not None:
        d = d - margin
    return -F.logsigmoid(d).mean()


def pairwise_accuracy(r_chosen, r_rejected):
    return (r_chosen > r_rejected).to(torch.float32).mean()


def last_token_rewards(values, attention_mask):
    index = attention_mask.long().sum(dim=-1) - 1
    return values.gather(-1, index.unsqueeze(-1)).squeeze(-1)
