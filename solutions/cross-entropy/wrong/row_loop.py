# expect: too_slow
# why: correct, but loops over the positions in Python, a handful of small tensor ops per row
# caught-by: test_speed
import torch


def cross_entropy(logits, targets, ignore_index=-100):
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    x = logits.reshape(-1, logits.shape[-1])
    losses = []
    for i, target in enumerate(targets.reshape(-1).tolist()):
        if target == ignore_index:
            continue
        row = x[i]
        m = row.max().detach()
        losses.append(m + torch.log(torch.exp(row - m).sum()) - row[target])
    if not losses:
        return (x * 0).sum()  # nothing counts: a zero that still has a gradient
    return torch.stack(losses).mean()
