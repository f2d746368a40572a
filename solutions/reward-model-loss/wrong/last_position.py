# expect: failed
# why: reads the reward at position T - 1 whatever the mask: right for left padding and full rows,
#   but under right padding it reads a padding position
# caught-by: test_last_token_rewards, test_last_token_right_padding, test_one_real_token
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
    return values[:, -1]
