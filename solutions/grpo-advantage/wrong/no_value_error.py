# expect: failed
# why: never checks the sizes: view raises RuntimeError for a length that is not a multiple of
#   group_size, and a negative group_size slips through the modulo
# caught-by: test_length_not_a_multiple_raises, test_group_size_below_one_raises
import torch


def grpo_advantages(rewards, group_size, eps=1e-6, normalize_by_std=True):
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    if group_size == 1:
        return torch.zeros(rewards.shape, dtype=out_dtype)
    r = rewards.to(torch.float64 if out_dtype == torch.float64 else torch.float32).view(-1, group_size)
    adv = r - r.mean(dim=1, keepdim=True)
    if normalize_by_std:
        adv = adv / (r.std(dim=1, keepdim=True) + eps)
    return adv.reshape(-1).to(out_dtype)
