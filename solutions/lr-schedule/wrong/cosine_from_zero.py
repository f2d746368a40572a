# expect: failed
# why: measures the cosine from t = 0 instead of from the end of the warmup: cos(t / (T_c - T_w) pi),
#   so at t = T_w the cosine is already part-way down, and it reaches min_lr T_w iterations early
# caught-by: test_worked_table, test_whole_schedule, test_boundaries
"""Cosine measured from t = 0."""

import math


def lr_at(t: float, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    """The learning rate at iteration t: linear warmup, cosine decay, then min_lr."""
    if t < warmup_iters:
        return t / warmup_iters * max_lr  # warmup_iters > 0 here, since t >= 0
    if t > cosine_cycle_iters:
        return float(min_lr)  # after the cycle: flat at min_lr, no restart
    if cosine_cycle_iters == warmup_iters:
        return float(max_lr)  # a cosine of length zero: its start value, cos(0) = 1
    progress = t / (cosine_cycle_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(progress * math.pi)) * (max_lr - min_lr)
