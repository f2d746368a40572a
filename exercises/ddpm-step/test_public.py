"""Public tests: the lesson's worked example (T = 3, betas = [0.1, 0.2, 0.5]) and the standard
linear schedule.

Run them with `grader test ddpm-step ddpm.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

SQRT_MISSING = "the noise was weighted by 1 - alpha_bar_t (and x0 by alpha_bar_t): take their square roots"
MEAN_ALPHA_BAR = "the mean divided by sqrt(alpha_bar_t): it divides by sqrt(alpha_t), the one-step alpha"
VARIANCE_LARGE = "the noise was scaled by sqrt(beta_t) where fixed_small asks for sqrt(beta_tilde_t)"
VARIANCE_AS_STD = "the noise was multiplied by the variance itself: multiply it by its square root, sigma_t"
NOISE_AT_0 = "noise was added at t = 0: the last step returns its mean"
ONE_BASED_T = (
    "the schedule was read at t - 1 (1-based timesteps): t indexes betas[t] and alpha_bar[t] directly"
)

BETAS = torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64)
X_T = torch.tensor([[1.1, -0.5]] * 3)
EPS = torch.tensor([[1.0, -1.0]] * 3)
NOISE = torch.tensor([[0.0, 1.0]] * 3)
R2 = math.sqrt(2.0)


def means():
    """The step's means at t = 2, 1, 0 for X_T and EPS (rows of the lesson's example)."""
    return torch.tensor(
        [
            [R2 * (1.1 - 0.625), R2 * (-0.5 + 0.625)],
            [(1.1 - 0.2 / math.sqrt(0.28)) / math.sqrt(0.8), (-0.5 + 0.2 / math.sqrt(0.28)) / math.sqrt(0.8)],
            [(1.1 - 0.1 / math.sqrt(0.1)) / math.sqrt(0.9), (-0.5 + 0.1 / math.sqrt(0.1)) / math.sqrt(0.9)],
        ]
    )


def one_based(variance):
    """The step's output when the toy schedule is read at t - 1 (t = 0 wrapping round to the end)."""
    betas, abar = [0.1, 0.2, 0.5], [0.9, 0.72, 0.36]
    rows = []
    for row, t in enumerate([2, 1, 0]):
        i = t - 1
        beta, ab, ab_prev = betas[i], abar[i], (abar[i - 1] if i != 0 else 1.0)
        var = (1 - ab_prev) / (1 - ab) * beta if variance == "fixed_small" else beta
        sigma = math.sqrt(var) if t > 0 else 0.0
        rows.append(
            (X_T[row] - beta / math.sqrt(1 - ab) * EPS[row]) / math.sqrt(1 - beta) + sigma * NOISE[row]
        )
    return torch.stack(rows)


def test_linear_betas(submission):
    """linear_betas(1000): float64, shape (1000,), from 1e-4 to 0.02 in equal steps."""
    betas = submission.linear_betas(1000)
    expect(isinstance(betas, torch.Tensor), "linear_betas must return a torch.Tensor")
    expect(betas.dtype == torch.float64, "linear_betas must return a float64 tensor")
    assert_close(betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), what="linear_betas(1000)")
    assert_close(
        submission.linear_betas(5, 0.1, 0.5),
        torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64),
        what="linear_betas(5, 0.1, 0.5)",
    )


def test_alpha_bars_and_posterior_variance(submission):
    """betas = [0.1, 0.2, 0.5]: alpha_bar = [0.9, 0.72, 0.36], beta_tilde = [0, 1/14, 7/32]."""
    assert_close(
        submission.alpha_bars(BETAS),
        torch.tensor([0.9, 0.72, 0.36], dtype=torch.float64),
        what="alpha_bars([0.1, 0.2, 0.5])",
        misconceptions={
            "these are the alphas 1 - beta_t: alpha_bar is their cumulative product": 1 - BETAS,
        },
    )
    assert_close(
        submission.posterior_variance(BETAS),
        torch.tensor([0.0, 1 / 14, 7 / 32], dtype=torch.float64),
        what="posterior_variance([0.1, 0.2, 0.5])",
    )


def test_q_sample_worked_example(submission):
    """x0 = [0.5, 0.5] at t = 2 with noise [1, -1] is [1.1, -0.5]; a second sample at t = 0."""
    x0 = torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    noise = torch.tensor([[0.0, 1.0], [1.0, -1.0]])
    t = torch.tensor([0, 2])
    s0, n0 = math.sqrt(0.9), math.sqrt(0.1)
    expected = torch.tensor([[s0, -2 * s0 + n0], [1.1, -0.5]])
    assert_close(
        submission.q_sample(x0, t, noise, BETAS),
        expected,
        what="q_sample(x0, t=[0, 2], noise, betas)",
        misconceptions={
            SQRT_MISSING: torch.tensor([[0.9, -1.8 + 0.1], [0.36 * 0.5 + 0.64, 0.36 * 0.5 - 0.64]]),
            ONE_BASED_T: torch.tensor(
                [
                    [0.6, -1.2 + 0.8],
                    [math.sqrt(0.72) * 0.5 + math.sqrt(0.28), math.sqrt(0.72) * 0.5 - math.sqrt(0.28)],
                ]
            ),
        },
    )


def test_step_worked_example(submission):
    """One step from x_t = [1.1, -0.5] at t = 2, 1 and 0 in one batched call (fixed_small)."""
    small = torch.tensor([0.0, 1 / 14, 7 / 32])
    m = means()
    expected = m + torch.tensor([math.sqrt(7 / 32), math.sqrt(1 / 14), 0.0]).unsqueeze(1) * NOISE
    t = torch.tensor([2, 1, 0])
    got = submission.ddpm_step(X_T, t, EPS, NOISE, BETAS)
    expect(isinstance(got, torch.Tensor), "ddpm_step must return a torch.Tensor")
    assert_close(
        got,
        expected,
        what="ddpm_step(x_t, t=[2, 1, 0], eps_pred, noise, betas)",
        misconceptions={
            VARIANCE_LARGE: m + torch.tensor([math.sqrt(0.5), math.sqrt(0.2), 0.0]).unsqueeze(1) * NOISE,
            VARIANCE_AS_STD: m + torch.tensor([7 / 32, 1 / 14, 0.0]).unsqueeze(1) * NOISE,
            ONE_BASED_T: one_based("fixed_small"),
            MEAN_ALPHA_BAR: torch.stack(
                [
                    (X_T[i] - EPS[i] * float(BETAS[j]) / math.sqrt(1 - ab)) / math.sqrt(ab)
                    + math.sqrt(float(small[j])) * NOISE[i]
                    for i, (j, ab) in enumerate([(2, 0.36), (1, 0.72), (0, 0.9)])
                ]
            ),
        },
    )


def test_step_fixed_large(submission):
    """variance="fixed_large": sigma_t^2 = beta_t, and still no noise at t = 0."""
    m = means()
    expected = m + torch.tensor([math.sqrt(0.5), math.sqrt(0.2), 0.0]).unsqueeze(1) * NOISE
    assert_close(
        submission.ddpm_step(X_T, torch.tensor([2, 1, 0]), EPS, NOISE, BETAS, variance="fixed_large"),
        expected,
        what='ddpm_step(..., variance="fixed_large")',
        misconceptions={
            NOISE_AT_0: m
            + torch.tensor([math.sqrt(0.5), math.sqrt(0.2), math.sqrt(0.1)]).unsqueeze(1) * NOISE,
            VARIANCE_AS_STD: m + torch.tensor([0.5, 0.2, 0.0]).unsqueeze(1) * NOISE,
            ONE_BASED_T: one_based("fixed_large"),
        },
    )


def test_step_at_t0_is_the_mean(submission):
    """At t = 0 the step returns its mean whatever the noise: [0.826169, -0.193713]."""
    big_noise = torch.tensor([[5.0, -7.0]])
    expected = means()[2:]
    for variance in ("fixed_small", "fixed_large"):
        assert_close(
            submission.ddpm_step(X_T[:1], torch.tensor([0]), EPS[:1], big_noise, BETAS, variance=variance),
            expected,
            what=f'ddpm_step at t = 0, variance="{variance}"',
            misconceptions={
                NOISE_AT_0: expected + math.sqrt(0.1) * big_noise,
                ONE_BASED_T: ((X_T[:1] - 0.5 / 0.8 * EPS[:1]) / math.sqrt(0.5)),
            },
        )


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda s: s.q_sample(X_T[:1], torch.tensor([3]), EPS[:1], BETAS), id="q_sample-t-equals-T"
        ),
        pytest.param(
            lambda s: s.ddpm_step(X_T[:1], torch.tensor([-1]), EPS[:1], NOISE[:1], BETAS),
            id="step-t-negative",
        ),
        pytest.param(
            lambda s: s.ddpm_step(X_T[:1], torch.tensor([1]), EPS[:1], NOISE[:1], BETAS, variance="learned"),
            id="step-unknown-variance",
        ),
        pytest.param(lambda s: s.linear_betas(0), id="linear-betas-T-0"),
    ],
)
def test_invalid_arguments_raise_value_error(submission, call):
    """A t outside 0 .. T-1, an unknown variance and T < 1 raise ValueError."""
    with pytest.raises(ValueError):
        call(submission)
