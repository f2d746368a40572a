"""Warmup and cosine learning-rate schedule. Read README.md first: it states every convention.

Fill in `lr_at` below.
"""


def lr_at(t: float, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    """The learning rate at iteration t (t >= 0, an int or a float), with
    T_w = warmup_iters and T_c = cosine_cycle_iters (0 <= T_w <= T_c):

        t < T_w:            t / T_w * max_lr                                   (linear warmup from 0)
        T_w <= t <= T_c:    min_lr + 1/2 * (1 + cos((t - T_w) / (T_c - T_w) * pi)) * (max_lr - min_lr)
        t > T_c:            min_lr                                             (flat, no restart)

    Edge cases: T_w = 0 has no warmup (the cosine starts at t = 0 with max_lr); T_c = T_w has a
    cosine of length zero: max_lr at t = T_w, min_lr after it (never divide by T_c - T_w = 0).

    Returns a Python float.
    """
    raise NotImplementedError("lr_at: warmup, then cosine, then min_lr")
