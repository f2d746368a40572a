# expect: failed
# why: divides the summed token losses by the number of sequences in the batch instead of the
#   number of real tokens (a per-sequence mean of token-loss sums): the gradient grows with the
#   sequences' lengths
# caught-by: test_equal_token_counts, test_random_micro_batches
import torch
import torch.nn.functional as F


def accumulate_gradients(model, micro_batches):
    model.zero_grad()
    total = sum(mask.shape[0] for _, _, mask in micro_batches)
    loss = torch.zeros(())
    for inputs, targets, mask in micro_batches:
        part = F.cross_entropy(model(inputs)[mask], targets[mask], reduction="sum") / total
        part.backward()
        loss += part.detach()
    return loss
