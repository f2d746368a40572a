# expect: failed
# why: adds the margin inside the sigmoid instead of subtracting it, which lowers the loss of the
#   pairs that should have to win by more
# caught-by: test_loss_random_batches, test_worked_example_with_margin, test_gradients
import torch
import torch.nn.functional as F


def pairwise_loss(r_chosen, r_rejected, margin=None):
    d = r_chosen - r_rejected
    if margin is not None:
        d = d + margin
    return -F.logsigmoid(d).mean()


def pairwise_accuracy(r_chosen, r_rejected):
    return (r_chosen > r_rejected).to(torch.float32).mean()


def last_token_rewards(values, attention_mask):
    positions = torch.arange(values.shape[-1])
    last = torch.where(attention_mask.to(torch.bool), positions, -1).amax(dim=-1)
    return values.gather(-1, last.unsqueeze(-1)).squeeze(-1)
