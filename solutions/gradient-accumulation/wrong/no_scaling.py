# expect: failed
# why: backpropagates each micro-batch's mean loss as it is, never dividing by the number of
#   micro-batches or tokens: the accumulated gradient is the sum of the micro-batch gradients,
#   k times too large with k equal micro-batches (the learning rate silently multiplied by k)
# caught-by: test_equal_token_counts, test_random_micro_batches, test_same_batch_any_split
import torch
import torch.nn.functional as F


def accumulate_gradients(model, micro_batches):
    model.zero_grad()
    loss = torch.zeros(())
    for inputs, targets, mask in micro_batches:
        mean = F.cross_entropy(model(inputs)[mask], targets[mask])
        mean.backward()
        loss += mean.detach()
    return loss
