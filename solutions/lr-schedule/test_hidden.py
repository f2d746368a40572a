"""Hidden tests of lr-schedule: whole schedules against an independent float64 implementation of the
formula, the cosine part against torch.optim.lr_scheduler.CosineAnnealingLR, every boundary
(t = 0, T_w, T_c, past T_c), no warmup, a cosine of length zero, and fractional t."""

import math
import warnings

import numpy as np
import pytest
import torch

from grader.testing import GradingFailure, assert_close, expect, shrink

WARMUP_OFF_BY_ONE = (
    "warmup off by one? At t = 0 the learning rate is 0: t / T_w * max_lr, reaching max_lr at t = T_w"
)
COSINE_FROM_ZERO = "cosine measured from t = 0? Its argument is (t - T_w) / (T_c - T_w) * pi: 0 at t = T_w"
COSINE_TO_ZERO = "cosine decays to 0? It decays to min_lr: min_lr + 1/2 (1 + cos(...)) (max_lr - min_lr)"
OVER_TC = "cosine argument divided by T_c? Divide by the cosine's length, T_c - T_w"
RESTART = (
    "the cosine continues past T_c (rising again, as CosineAnnealingLR does)? After T_c it stays at min_lr"
)
MAX_AFTER = "max_lr after the cycle? After T_c the learning rate stays at min_lr"
FLOORED = "fractional t rounded down? t can be a float: use it as it is"
FLOOR_DIVISION = "warmup computed with floor division (t // T_w)? t / T_w must be a true division (/ not //)"
LINEAR_DECAY = (
    "a linear decay instead of the cosine? Use min_lr + 1/2 (1 + cos((t - T_w) / (T_c - T_w) pi)) (...)"
)
ZERO_LENGTH = (
    "with T_c = T_w the cosine has length zero: return max_lr at t = T_w and min_lr after it, without "
    "dividing by T_c - T_w = 0"
)
NOT_A_NUMBER = "lr_at must return a Python float"


def formula(t, max_lr, min_lr, tw, tc, mistake=None):
    """The schedule in float64 with numpy (independent of the reference), and its likely mistakes."""
    t, max_lr, min_lr = np.float64(t), np.float64(max_lr), np.float64(min_lr)
    if mistake == "floored":
        t = np.floor(t)
    if t < tw:
        if mistake == "floor-division":
            return float(t // tw * max_lr)
        return float((t + 1) / tw * max_lr) if mistake == "off-by-one" else float(t / tw * max_lr)
    if t > tc and mistake != "restart":
        return float(max_lr) if mistake == "max-after" else float(min_lr)
    if tc == tw:
        return float(max_lr)
    span = tc if mistake == "over-tc" else tc - tw
    start = 0 if mistake == "from-zero" else tw
    if mistake == "linear":
        return float(min_lr + (1 - (t - tw) / span) * (max_lr - min_lr))
    low = 0.0 if mistake == "to-zero" else min_lr
    return float(low + 0.5 * (1 + np.cos((t - start) / span * np.pi)) * (max_lr - low))


MISTAKES = {
    WARMUP_OFF_BY_ONE: "off-by-one",
    COSINE_FROM_ZERO: "from-zero",
    COSINE_TO_ZERO: "to-zero",
    OVER_TC: "over-tc",
    RESTART: "restart",
    MAX_AFTER: "max-after",
    FLOORED: "floored",
    LINEAR_DECAY: "linear",
    FLOOR_DIVISION: "floor-division",
}


def schedule(submission, ts, max_lr, min_lr, tw, tc):
    """The submission's learning rates at every t of ts, as a float64 tensor (numbers checked)."""
    out = [submission.lr_at(t, max_lr, min_lr, tw, tc) for t in ts]
    expect(
        all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in out),
        NOT_A_NUMBER,
        hint="return a number (math.cos, not torch.cos on a tensor): float(...) if in doubt",
    )
    return torch.tensor(out, dtype=torch.float64)


def assert_schedule(got, ts, max_lr, min_lr, tw, tc, what):
    want = torch.tensor([formula(t, max_lr, min_lr, tw, tc) for t in ts], dtype=torch.float64)
    wrong = {
        label: torch.tensor([formula(t, max_lr, min_lr, tw, tc, m) for t in ts], dtype=torch.float64)
        for label, m in MISTAKES.items()
    }
    # float64 rounding is ~1e-16 relative; the tolerance is relative to max_lr
    assert_close(got, want, what=what, rtol=1e-9, atol=1e-12 * max_lr, misconceptions=wrong)


SETTINGS = [
    pytest.param(1.0, 0.1, 7, 21, id="cs336-test-setting"),
    pytest.param(3e-4, 3e-5, 10, 50, id="llm-like"),
    pytest.param(1e-3, 0.0, 5, 25, id="min-lr-zero"),
    pytest.param(6e-4, 6e-5, 1, 9, id="one-warmup-iter"),
    pytest.param(2.0, 1.5, 10, 11, id="one-cosine-iter"),
]


@pytest.mark.parametrize("max_lr,min_lr,tw,tc", SETTINGS)
def test_whole_schedule(submission, max_lr, min_lr, tw, tc):
    """Every integer t from 0 to past the end of the cycle, against the formula in float64."""
    ts = list(range(0, tc + 6))
    got = schedule(submission, ts, max_lr, min_lr, tw, tc)
    assert_schedule(got, ts, max_lr, min_lr, tw, tc, f"the learning rates for t = 0 .. {tc + 5}")


@pytest.mark.parametrize("max_lr,min_lr,tw,tc", SETTINGS)
def test_boundaries(submission, max_lr, min_lr, tw, tc):
    """t = 0 gives 0, t = T_w gives max_lr, t = T_c gives min_lr, and t > T_c gives min_lr."""
    checks = [
        (0, 0.0, "t = 0"),
        (tw, max_lr, "t = T_w"),
        (tc, min_lr, "t = T_c"),
        (tc + 1, min_lr, "t = T_c + 1"),
    ]
    for t, want, name in checks:
        got = schedule(submission, [t], max_lr, min_lr, tw, tc)
        wrong = {
            label: torch.tensor([formula(t, max_lr, min_lr, tw, tc, m)], dtype=torch.float64)
            for label, m in MISTAKES.items()
        }
        assert_close(
            got,
            torch.tensor([want], dtype=torch.float64),
            what=f"the learning rate at {name}",
            rtol=1e-9,
            atol=1e-12 * max_lr,
            misconceptions=wrong,
        )


def test_long_after_the_cycle(submission):
    """Far past T_c (10x, 100x, and at t = 2 T_c - T_w, where a restarted cosine is back at max_lr)."""
    max_lr, min_lr, tw, tc = 1e-3, 1e-4, 10, 100
    ts = [101, 150, 190, 1000, 10_000]
    got = schedule(submission, ts, max_lr, min_lr, tw, tc)
    assert_schedule(got, ts, max_lr, min_lr, tw, tc, "the learning rates past T_c")


@pytest.mark.parametrize(
    "max_lr,min_lr,tc", [pytest.param(1.0, 0.1, 10, id="T_c-10"), pytest.param(5e-4, 0.0, 1, id="T_c-1")]
)
def test_no_warmup(submission, max_lr, min_lr, tc):
    """warmup_iters = 0: no warmup; the cosine starts at t = 0 with max_lr."""
    ts = list(range(0, tc + 3))
    got = schedule(submission, ts, max_lr, min_lr, 0, tc)
    assert_schedule(got, ts, max_lr, min_lr, 0, tc, "the learning rates with warmup_iters = 0")


@pytest.mark.parametrize("tw", [pytest.param(5, id="T_w-5"), pytest.param(0, id="T_w-0")])
def test_zero_length_cosine(submission, tw):
    """cosine_cycle_iters = warmup_iters: max_lr at t = T_w, min_lr after it (no division by zero)."""
    max_lr, min_lr = 1.0, 0.25
    ts = list(range(0, tw + 4))
    try:
        got = [submission.lr_at(t, max_lr, min_lr, tw, tw) for t in ts]
    except ZeroDivisionError:
        raise GradingFailure(
            "with cosine_cycle_iters = warmup_iters your code raised ZeroDivisionError", hint=ZERO_LENGTH
        ) from None
    expect(all(isinstance(v, (int, float)) for v in got), NOT_A_NUMBER)
    expect(
        all(math.isfinite(v) for v in got),
        "with cosine_cycle_iters = warmup_iters the learning rates are NaN or inf",
        hint=ZERO_LENGTH,
    )
    assert_close(
        torch.tensor(got, dtype=torch.float64),
        torch.tensor([formula(t, max_lr, min_lr, tw, tw) for t in ts], dtype=torch.float64),
        what="the learning rates with cosine_cycle_iters = warmup_iters",
        rtol=1e-9,
        atol=1e-12,
        hint=ZERO_LENGTH,
        # with T_c = T_w a cosine that continues past T_c gives max_lr there too: named as what it shows
        misconceptions={
            label: torch.tensor([formula(t, max_lr, min_lr, tw, tw, m) for t in ts], dtype=torch.float64)
            for label, m in {MAX_AFTER: "max-after", **MISTAKES}.items()
            if label != RESTART
        },
    )


def test_fractional_t(submission):
    """t as a float (fractions of an iteration) in the warmup, the cosine and after it."""
    max_lr, min_lr, tw, tc = 1.0, 0.1, 4, 12
    ts = [0.0, 0.5, 2.25, 3.999, 4.0, 4.5, 7.75, 11.5, 12.0, 12.5, 20.0]
    got = schedule(submission, ts, max_lr, min_lr, tw, tc)
    assert_schedule(got, ts, max_lr, min_lr, tw, tc, "the learning rates at fractional t")


def test_cosine_matches_torch(submission):
    """From T_w to T_c the schedule is torch's CosineAnnealingLR(T_max = T_c - T_w, eta_min = min_lr),
    started at T_w."""
    max_lr, min_lr, tw, tc = 6e-4, 6e-5, 8, 28
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=tc - tw, eta_min=min_lr)
    want = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping the scheduler without a real training step
        for k in range(tc - tw + 1):
            if k:
                opt.step()
                sched.step()
            want.append(sched.get_last_lr()[0])
    ts = list(range(tw, tc + 1))
    got = schedule(submission, ts, max_lr, min_lr, tw, tc)
    wrong = {
        label: torch.tensor([formula(t, max_lr, min_lr, tw, tc, m) for t in ts], dtype=torch.float64)
        for label, m in MISTAKES.items()
    }
    assert_close(
        got,
        torch.tensor(want, dtype=torch.float64),
        what="the learning rates from T_w to T_c",
        rtol=1e-9,
        atol=1e-12 * max_lr,
        misconceptions=wrong,
    )


def test_random_settings(submission, seed):
    """Random warmup and cycle lengths and learning rates, every integer t up to past the cycle."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        tw, tc = sizes["warmup"], sizes["warmup"] + sizes["cosine"]
        max_lr = float(10 ** rng.uniform(-4, 0))
        min_lr = float(max_lr * rng.uniform(0.01, 0.5))
        ts = list(range(0, tc + 3))
        got = schedule(submission, ts, max_lr, min_lr, tw, tc)
        assert_schedule(got, ts, max_lr, min_lr, tw, tc, f"the learning rates with T_w = {tw}, T_c = {tc}")

    shrink(check, {"warmup": 6, "cosine": 20}, seed=seed, minimum={"warmup": 1, "cosine": 1}, budget=24)


def test_integer_arguments(submission):
    """Integer learning rates and t (lr_at(3, 2, 1, 4, 8)) still give float results."""
    ts = [0, 3, 4, 6, 8, 9, 12]
    out = [submission.lr_at(t, 2, 1, 4, 8) for t in ts]
    expect(all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in out), NOT_A_NUMBER)
    wrong = {
        label: torch.tensor([formula(t, 2, 1, 4, 8, m) for t in ts], dtype=torch.float64)
        for label, m in MISTAKES.items()
    }
    assert_close(
        torch.tensor(out, dtype=torch.float64),
        torch.tensor([0.0, 1.5, 2.0, 1.5, 1.0, 1.0, 1.0], dtype=torch.float64),
        what="lr_at(t, 2, 1, 4, 8) for t = 0, 3, 4, 6, 8, 9, 12",
        rtol=1e-9,
        atol=1e-12,
        misconceptions=wrong,
    )
