# expect: failed
# why: multiplies the log-probabilities by a one-hot mask and takes .mean() of the whole (N, V)
#   matrix: the sum is divided by N x V instead of by the number of positions
# caught-by: test_random_shapes, test_shapes, test_worked_example
import torch


def cross_entropy(logits, targets, ignore_index=-100):
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    vocab = logits.shape[-1]
    x = logits.reshape(-1, vocab)
    t = targets.reshape(-1)
    m = x.max(dim=-1, keepdim=True).values
    log_probs = x - m - torch.log(torch.exp(x - m).sum(dim=-1, keepdim=True))
    keep = t != ignore_index
    onehot = torch.nn.functional.one_hot(torch.where(keep, t, 0), vocab) * keep.unsqueeze(-1)
    return -(log_probs * onehot).mean()
