# expect: failed
# why: the classic recipe: each micro-batch's MEAN token loss divided by the number of micro-batches
#   (the mean of the micro-batch means): exact only when every micro-batch has as many real tokens,
#   otherwise the tokens of small micro-batches weigh more; an all-padding micro-batch gives NaN
# caught-by: test_unequal_token_counts, test_random_micro_batches, test_micro_batch_of_padding_only
import torch
import torch.nn.functional as F


def accumulate_gradients(model, micro_batches):
    model.zero_grad()
    k = len(micro_batches)
    loss = torch.zeros(())
    for inputs, targets, mask in micro_batches:
        mean = F.cross_entropy(model(inputs)[mask], targets[mask])
        (mean / k).backward()
        loss += mean.detach() / k
    return loss
