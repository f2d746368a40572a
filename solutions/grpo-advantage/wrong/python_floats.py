# expect: too_slow
# why: correct, but computes in Python floats: tolist(), a loop per group and per reward, then
#   torch.tensor; the tensor-op count stays small while the time grows with every reward
# caught-by: test_speed
import math

import torch


def grpo_advantages(rewards, group_size, eps=1e-6, normalize_by_std=True):
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    values = [float(x) for x in rewards.tolist()]
    out = []
    for start in range(0, len(values), group_size):
        group = values[start : start + group_size]
        mean = math.fsum(group) / group_size
        dev = [x - mean for x in group]
        if normalize_by_std and group_size > 1:
            std = math.sqrt(math.fsum(d * d for d in dev) / (group_size - 1))
            dev = [d / (std + eps) for d in dev]
        elif normalize_by_std:
            dev = [0.0]
        out.extend(dev)
    return torch.tensor(out, dtype=torch.float64).to(out_dtype)
