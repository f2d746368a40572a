# expect: failed
# why: scales every micro-batch right but never zeroes the gradients first: whatever .grad held
#   from an earlier step is added to (backward accumulates). A fresh model has no .grad, so the
#   public tests pass
# caught-by: test_stale_gradients
import torch
import torch.nn.functional as F


def accumulate_gradients(model, micro_batches):
    total = sum(int(mask.sum()) for _, _, mask in micro_batches)
    loss = torch.zeros(())
    for inputs, targets, mask in micro_batches:
        part = F.cross_entropy(model(inputs)[mask], targets[mask], reduction="sum") / total
        part.backward()
        loss += part.detach()
    return loss
