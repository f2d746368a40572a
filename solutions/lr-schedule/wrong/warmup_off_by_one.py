# expect: failed
# why: warms up from max_lr / T_w at t = 0 ((t + 1) / T_w * max_lr): the first iteration already
#   has a non-zero learning rate and the peak comes one iteration early
# caught-by: test_worked_table, test_warmup_starts_at_zero, test_boundaries, test_whole_schedule
"""Warmup off by one."""

import math


def lr_at(t: float, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    """The learning rate at iteration t: linear warmup, cosine decay, then min_lr."""
    if t < warmup_iters:
        return (t + 1) / warmup_iters * max_lr
    if t > cosine_cycle_iters:
        return float(min_lr)  # after the cycle: flat at min_lr, no restart
    if cosine_cycle_iters == warmup_iters:
        return float(max_lr)  # a cosine of length zero: its start value, cos(0) = 1
    progress = (t - warmup_iters) / (cosine_cycle_iters - warmup_iters)  # 0 at T_w, 1 at T_c
    return min_lr + 0.5 * (1 + math.cos(progress * math.pi)) * (max_lr - min_lr)
