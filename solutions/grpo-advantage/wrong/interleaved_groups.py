# expect: failed
# why: reshapes to (group_size, G) and reduces along dim 0, so group g is rewards[g::G]: every
#   group mixes completions of different prompts
# caught-by: test_continuous_rewards, test_invariant_to_a_constant_per_group, test_worked_example
import torch


def grpo_advantages(rewards, group_size, eps=1e-6, normalize_by_std=True):
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    if group_size == 1:
        return torch.zeros(rewards.shape, dtype=out_dtype)
    r = rewards.to(torch.float64 if out_dtype == torch.float64 else torch.float32).reshape(group_size, -1)
    adv = r - r.mean(dim=0, keepdim=True)
    if normalize_by_std:
        adv = adv / (r.std(dim=0, keepdim=True) + eps)
    return adv.reshape(-1).to(out_dtype)
