# expect: failed
# why: divides the cosine's elapsed time by T_c instead of by its length T_c - T_w: the decay is too
#   slow and ends, at t = T_c, above min_lr, then drops to min_lr at T_c + 1
# caught-by: test_worked_table, test_peak_middle_and_end, test_whole_schedule
"""Cosine argument over T_c."""

import math


def lr_at(t: float, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    """The learning rate at iteration t: linear warmup, cosine decay, then min_lr."""
    if t < warmup_iters:
        return t / warmup_iters * max_lr  # warmup_iters > 0 here, since t >= 0
    if t > cosine_cycle_iters:
        return float(min_lr)  # after the cycle: flat at min_lr, no restart
    if cosine_cycle_iters == warmup_iters:
        return float(max_lr)  # a cosine of length zero: its start value, cos(0) = 1
    progress = (t - warmup_iters) / cosine_cycle_iters
    return min_lr + 0.5 * (1 + math.cos(progress * math.pi)) * (max_lr - min_lr)
