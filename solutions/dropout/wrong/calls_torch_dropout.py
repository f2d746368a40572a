# expect: rejected
# why: hands the work to torch.nn.functional.dropout, which the exercise forbids (its mask comes
#   from bernoulli_, not from the rule)
import torch
import torch.nn.functional as F


def dropout(x, p=0.5, training=True, seed=0):
    torch.manual_seed(seed)
    return F.dropout(x, p=p, training=training)
