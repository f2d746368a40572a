# expect: failed
# why: normalises in place (r -= mean, r /= std + eps) on rewards.float().view(G, n), which for
#   float32 rewards is the caller's own tensor: the advantages are right, the rewards are destroyed
# caught-by: test_rewards_left_unchanged
import torch


def grpo_advantages(rewards, group_size, eps=1e-6, normalize_by_std=True):
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    if group_size == 1:
        return torch.zeros(rewards.shape, dtype=out_dtype)
    compute_dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    r = rewards.to(compute_dtype).view(-1, group_size)  # no copy when the dtype already matches
    r -= r.mean(dim=1, keepdim=True)
    if normalize_by_std:
        r /= r.std(dim=1, keepdim=True) + eps
    return r.view(-1).to(out_dtype)
