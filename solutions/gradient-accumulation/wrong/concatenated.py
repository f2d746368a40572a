# expect: too_slow
# why: correct gradient, but concatenates the real tokens of every micro-batch and runs one forward
#   and backward over all of them: the memory of the whole batch, which accumulation exists to avoid
# caught-by: test_one_micro_batch_at_a_time
import torch
import torch.nn.functional as F


def accumulate_gradients(model, micro_batches):
    model.zero_grad()
    x = torch.cat([inputs[mask] for inputs, _, mask in micro_batches])
    y = torch.cat([targets[mask] for _, targets, mask in micro_batches])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach()
