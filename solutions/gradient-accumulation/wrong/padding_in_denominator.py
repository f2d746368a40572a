# expect: failed
# why: sums the real tokens' losses but divides by every position of the batch (mask.numel()),
#   padding included: the gradient points the right way but shrinks with the amount of padding
# caught-by: test_unequal_token_counts, test_padding_ignored, test_random_micro_batches
import torch
import torch.nn.functional as F


def accumulate_gradients(model, micro_batches):
    model.zero_grad()
    total = sum(mask.numel() for _, _, mask in micro_batches)
    loss = torch.zeros(())
    for inputs, targets, mask in micro_batches:
        part = F.cross_entropy(model(inputs)[mask], targets[mask], reduction="sum") / total
        part.backward()
        loss += part.detach()
    return loss
