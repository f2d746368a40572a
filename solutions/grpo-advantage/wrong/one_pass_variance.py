# expect: failed
# why: takes the variance as mean(r^2) - mean(r)^2: right in exact arithmetic, but with rewards far
#   from 0 the subtraction cancels most digits (float32 at offsets around 20, float64 around 1e6)
# caught-by: test_float_dtypes, test_float64_keeps_precision
import torch


def grpo_advantages(rewards, group_size, eps=1e-6, normalize_by_std=True):
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    if group_size == 1:
        return torch.zeros(rewards.shape, dtype=out_dtype)
    r = rewards.to(torch.float64 if out_dtype == torch.float64 else torch.float32).reshape(-1, group_size)
    mean = r.mean(dim=1, keepdim=True)
    adv = r - mean
    if normalize_by_std:
        var = ((r * r).mean(dim=1, keepdim=True) - mean * mean).clamp_min(0) * group_size / (group_size - 1)
        adv = adv / (var.sqrt() + eps)
    return adv.reshape(-1).to(out_dtype)
