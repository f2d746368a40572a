"""Group-relative advantages for GRPO: every reward is compared with the other completions of
the same prompt."""

import torch


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, eps: float = 1e-6, normalize_by_std: bool = True
) -> torch.Tensor:
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    # float inputs keep their dtype; bool and int rewards become float32
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    if group_size == 1:
        return torch.zeros(rewards.shape, dtype=out_dtype, device=rewards.device)  # nobody to compare with
    # half precision is computed in float32: squared deviations overflow float16 quickly
    compute_dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    r = rewards.to(compute_dtype).reshape(-1, group_size)  # (G, n): one row per prompt
    adv = r - r.mean(dim=1, keepdim=True)  # (G, n), each row sums to 0
    if normalize_by_std:
        adv = adv / (r.std(dim=1, keepdim=True) + eps)  # unbiased std (n - 1), eps outside the root
    return adv.reshape(rewards.shape).to(out_dtype)
