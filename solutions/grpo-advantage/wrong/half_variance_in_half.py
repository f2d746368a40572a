# expect: failed
# why: computes a hand-written variance in the input's dtype: for float16 rewards hundreds apart the
#   squared deviations overflow to inf and the advantages collapse to 0
# caught-by: test_float16_large_spread
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
    dev = r - r.mean(dim=1, keepdim=True)
    if not normalize_by_std:
        return dev.reshape(-1)
    var = (dev * dev).sum(dim=1, keepdim=True) / (group_size - 1)
    return (dev / (var.sqrt() + eps)).reshape(-1)
