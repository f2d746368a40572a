# expect: failed
# why: no post-annealing branch: the cosine goes on past T_c and rises again towards max_lr, as
#   torch.optim.lr_scheduler.CosineAnnealingLR does (a warm restart), where the schedule stays at min_lr
# caught-by: test_worked_table, test_peak_middle_and_end, test_long_after_the_cycle
"""The cosine continues past T_c."""

import math


def lr_at(t: float, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    """The learning rate at iteration t: linear warmup, cosine decay, then min_lr."""
    if t < warmup_iters:
        return t / warmup_iters * max_lr  # warmup_iters > 0 here, since t >= 0
    if cosine_cycle_iters == warmup_iters:
        return float(max_lr)  # a cosine of length zero: its start value, cos(0) = 1
    progress = (t - warmup_iters) / (cosine_cycle_iters - warmup_iters)  # 0 at T_w, 1 at T_c
    return min_lr + 0.5 * (1 + math.cos(progress * math.pi)) * (max_lr - min_lr)
