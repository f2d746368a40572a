# expect: failed
# why: the whole log-sum-exp is computed without gradient (not just the max): the loss value is
#   right, but backward only sees -x[t], so the softmax part of the gradient is missing
# caught-by: test_gradients, test_gradient
import torch


def cross_entropy(logits, targets, ignore_index=-100):
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    x = logits.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    with torch.no_grad():  # "the max trick is just for stability"
        m = x.max(dim=-1, keepdim=True).values
        lse = m.squeeze(-1) + torch.log(torch.exp(x - m).sum(dim=-1))
    keep = t != ignore_index
    target_logit = x.gather(-1, torch.where(keep, t, 0).unsqueeze(-1)).squeeze(-1)
    return ((lse - target_logit) * keep).sum() / keep.sum().clamp(min=1)
