# expect: failed
# why: converts bool and int rewards with .to(float), and Python's float is torch.float64, so they
#   come back as float64 instead of float32
# caught-by: test_integer_and_bool_rewards, test_bool_rewards_give_float32
import torch


def grpo_advantages(rewards, group_size, eps=1e-6, normalize_by_std=True):
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not rewards.is_floating_point():
        rewards = rewards.to(float)
    out_dtype = rewards.dtype
    if group_size == 1:
        return torch.zeros(rewards.shape, dtype=out_dtype)
    r = rewards.to(torch.float64 if out_dtype == torch.float64 else torch.float32).reshape(-1, group_size)
    adv = r - r.mean(dim=1, keepdim=True)
    if normalize_by_std:
        adv = adv / (r.std(dim=1, keepdim=True) + eps)
    return adv.reshape(-1).to(out_dtype)
