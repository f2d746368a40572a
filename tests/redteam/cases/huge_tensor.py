# expect: memory_limit
# threat: allocates a 100 GB tensor
import torch


def row_sums(x):
    return torch.ones(25 * 1024**3)
