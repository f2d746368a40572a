# expect: failed
# why: writes the three cases of the formula without the T_c = T_w case: with a cosine of length zero,
#   t = T_w divides by T_c - T_w = 0 (ZeroDivisionError); every other schedule is right (public tests pass)
# caught-by: test_zero_length_cosine
"""No guard for a cosine of length zero."""

import math


def lr_at(t: float, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    """The learning rate at iteration t: linear warmup, cosine decay, then min_lr."""
    if t < warmup_iters:
        return t / warmup_iters * max_lr  # warmup_iters > 0 here, since t >= 0
    if t > cosine_cycle_iters:
        return float(min_lr)  # after the cycle: flat at min_lr, no restart
    progress = (t - warmup_iters) / (cosine_cycle_iters - warmup_iters)  # 0 at T_w, 1 at T_c
    return min_lr + 0.5 * (1 + math.cos(progress * math.pi)) * (max_lr - min_lr)
