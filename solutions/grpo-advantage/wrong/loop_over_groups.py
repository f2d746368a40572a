# expect: too_slow
# why: correct, but loops over the groups in Python: a few tensor ops per group, so the op count
#   and the time grow with the number of groups
# caught-by: test_ops_do_not_grow_with_groups, test_speed
import torch


def grpo_advantages(rewards, group_size, eps=1e-6, normalize_by_std=True):
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    if group_size == 1:
        return torch.zeros(rewards.shape, dtype=out_dtype)
    r = rewards.to(torch.float64 if out_dtype == torch.float64 else torch.float32)
    out = torch.empty_like(r)
    for start in range(0, r.numel(), group_size):
        group = r[start : start + group_size]
        adv = group - group.mean()
        if normalize_by_std:
            adv = adv / (group.std() + eps)
        out[start : start + group_size] = adv
    return out.to(out_dtype)
