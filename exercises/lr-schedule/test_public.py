"""Public tests: the worked table of README.md and other small cases you can check by hand.

Run them with `grader test lr-schedule lr_schedule.py`.
"""

import torch

from grader.testing import assert_close, expect

# the worked table: max_lr = 1.0, min_lr = 0.1, T_w = 4, T_c = 12, t = 0 .. 14
TABLE = [0.0, 0.25, 0.5, 0.75, 1.0, 0.965746, 0.868198, 0.722208, 0.55, 0.377792, 0.231802, 0.134254]
TABLE += [0.1, 0.1, 0.1]
OFF_BY_ONE = (
    "warmup off by one? At t = 0 the learning rate is 0: t / T_w * max_lr, reaching max_lr at t = T_w"
)
TO_ZERO = "cosine decays to 0? It decays to min_lr: min_lr + 1/2 (1 + cos(...)) (max_lr - min_lr)"
FLOOR_DIVISION = "warmup computed with floor division (t // T_w)? t / T_w must be a true division (/ not //)"
RESTART = (
    "the cosine continues past T_c (rising again, as CosineAnnealingLR does)? After T_c it stays at min_lr"
)


def lrs(submission, ts, *args):
    out = [submission.lr_at(t, *args) for t in ts]
    expect(
        all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in out),
        "lr_at must return a Python float",
        detail=f"got {[type(v).__name__ for v in out]}",
        hint="return a number (math.cos, not torch.cos on a tensor): float(...) if in doubt",
    )
    return torch.tensor(out, dtype=torch.float64)


def test_worked_table(submission):
    """max_lr = 1, min_lr = 0.1, T_w = 4, T_c = 12: the table of README.md, t = 0 .. 14."""
    assert_close(
        lrs(submission, range(15), 1.0, 0.1, 4, 12),
        torch.tensor(TABLE, dtype=torch.float64),
        what="the learning rates for t = 0 .. 14",
        rtol=1e-5,
        atol=1e-6,
        misconceptions={
            OFF_BY_ONE: torch.tensor([0.25, 0.5, 0.75, 1.0] + TABLE[4:], dtype=torch.float64),
            TO_ZERO: torch.tensor(
                TABLE[:4] + [(v - 0.1) / 0.9 for v in TABLE[4:12]] + [0.1, 0.1, 0.1], dtype=torch.float64
            ),
            RESTART: torch.tensor(TABLE[:13] + [0.134254, 0.231802], dtype=torch.float64),
            FLOOR_DIVISION: torch.tensor([0.0] * 4 + TABLE[4:], dtype=torch.float64),
        },
    )


def test_warmup_starts_at_zero(submission):
    """t = 0 gives 0, and the warmup rises by max_lr / T_w per iteration: 0, 0.3, 0.6, 0.9 for T_w = 10."""
    assert_close(
        lrs(submission, [0, 1, 2, 3], 3.0, 0.5, 10, 30),
        torch.tensor([0.0, 0.3, 0.6, 0.9], dtype=torch.float64),
        what="the learning rates for t = 0, 1, 2, 3",
        rtol=1e-9,
        atol=1e-12,
        misconceptions={
            OFF_BY_ONE: torch.tensor([0.3, 0.6, 0.9, 1.2], dtype=torch.float64),
            FLOOR_DIVISION: torch.tensor([0.0, 0.0, 0.0, 0.0], dtype=torch.float64),
        },
    )


def test_peak_middle_and_end(submission):
    """max_lr at t = T_w, the midpoint (max_lr + min_lr) / 2 halfway through the cosine, min_lr at
    t = T_c, and min_lr long after."""
    assert_close(
        lrs(submission, [10, 20, 30, 31, 50, 1000], 3.0, 0.5, 10, 30),
        torch.tensor([3.0, 1.75, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64),
        what="the learning rates at t = 10, 20, 30, 31, 50, 1000 (T_w = 10, T_c = 30)",
        rtol=1e-9,
        atol=1e-12,
        misconceptions={
            "cosine argument divided by T_c? Divide by the cosine's length, T_c - T_w": torch.tensor(
                [3.0, 0.5 + 1.25 * (1 + 0.5), 0.5 + 1.25 * (1 + (-0.5)), 0.5, 0.5, 0.5], dtype=torch.float64
            ),
            RESTART: torch.tensor(  # the cosine continued: rising again after T_c = 30, back at 3 at t = 50
                [3.0, 1.75, 0.5, 0.5153895742560778, 3.0, 1.75], dtype=torch.float64
            ),
        },
    )


def test_no_warmup(submission):
    """warmup_iters = 0: the cosine starts at t = 0 with max_lr = 1 and ends at t = 4 with 0.1."""
    assert_close(
        lrs(submission, range(6), 1.0, 0.1, 0, 4),
        torch.tensor([1.0, 0.868198, 0.55, 0.231802, 0.1, 0.1], dtype=torch.float64),
        what="the learning rates for t = 0 .. 5 with warmup_iters = 0",
        rtol=1e-5,
        atol=1e-6,
        misconceptions={
            RESTART: torch.tensor([1.0, 0.868198, 0.55, 0.231802, 0.1, 0.231802], dtype=torch.float64)
        },
    )
