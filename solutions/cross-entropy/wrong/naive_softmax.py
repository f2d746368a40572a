# expect: failed
# why: softmax straight from the formula, without subtracting the max: exp overflows to inf for
#   large logits, and inf / inf = NaN
# caught-by: test_large_logits, test_shift_invariance, test_large_logits_stay_finite
import torch


def cross_entropy(logits, targets, ignore_index=-100):
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    x = logits.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    probs = torch.exp(x) / torch.exp(x).sum(dim=-1, keepdim=True)
    keep = t != ignore_index
    p_target = probs.gather(-1, torch.where(keep, t, 0).unsqueeze(-1)).squeeze(-1)
    losses = -torch.log(p_target) * keep
    return losses.sum() / keep.sum().clamp(min=1)
