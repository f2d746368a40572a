# expect: failed
# why: computes float16 and bfloat16 rewards in their own dtype: the group means are rounded to a
#   few bits, and every advantage inherits that error
# caught-by: test_float_dtypes
import torch


def grpo_advantages(rewards, group_size, eps=1e-6, normalize_by_std=True):
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not rewards.is_floating_point():
        rewards = rewards.float()
    if group_size == 1:
        return torch.zeros_like(rewards)
    r = rewards.reshape(-1, group_size)
    adv = r - r.mean(dim=1, keepdim=True)
    if normalize_by_std:
        adv = adv / (r.std(dim=1, keepdim=True) + eps)
    return adv.reshape(-1)
