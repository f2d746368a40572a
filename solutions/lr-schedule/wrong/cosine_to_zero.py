# expect: failed
# why: the cosine decays to 0 (1/2 (1 + cos(...)) max_lr, the form of the SGDR paper with eta_min = 0)
#   and min_lr only appears after T_c: a jump from 0 up to min_lr at the end of the cycle
# caught-by: test_worked_table, test_whole_schedule
"""Cosine to 0 instead of min_lr."""

import math


def lr_at(t: float, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    """The learning rate at iteration t: linear warmup, cosine decay, then min_lr."""
    if t < warmup_iters:
        return t / warmup_iters * max_lr  # warmup_iters > 0 here, since t >= 0
    if t > cosine_cycle_iters:
        return float(min_lr)  # after the cycle: flat at min_lr, no restart
    if cosine_cycle_iters == warmup_iters:
        return float(max_lr)  # a cosine of length zero: its start value, cos(0) = 1
    progress = (t - warmup_iters) / (cosine_cycle_iters - warmup_iters)  # 0 at T_w, 1 at T_c
    return 0.5 * (1 + math.cos(progress * math.pi)) * max_lr
