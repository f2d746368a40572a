"""Public tests: the lesson's worked example, the gains, the statistics of the two samplers, seeds,
and the deep ReLU stack.

Run them with `grader test weight-init weight_init.py`.

The samplers are checked through the distribution of about a million entries, with bounds that a
correct solution misses with a probability below one in a billion (Hoeffding's inequality for
bounded values, the chi-square tail for the normal's mean square).
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

LOG_TERM = math.log(2 / 1e-12)  # each bound holds with probability 1 - 1e-12
FANS_SWAPPED = (
    "fans swapped? A Linear weight is (out_features, in_features): fan_in = shape[1], fan_out = shape[0]"
)


def test_fans_of_a_linear_weight(submission):
    """nn.Linear(512, 256) stores its weight as (256, 512): fan_in = 512, fan_out = 256."""
    assert_close(
        submission.fan_in_and_fan_out((256, 512)),
        (512, 256),
        what="fan_in_and_fan_out((256, 512))",
        misconceptions={FANS_SWAPPED: (256, 512)},
    )


@pytest.mark.parametrize(
    "nonlinearity, param, expected",
    [
        pytest.param("linear", None, 1.0, id="linear"),
        pytest.param("sigmoid", None, 1.0, id="sigmoid"),
        pytest.param("tanh", None, 5 / 3, id="tanh"),
        pytest.param("relu", None, math.sqrt(2), id="relu"),
        pytest.param("leaky_relu", 0.2, math.sqrt(2 / 1.04), id="leaky_relu-0.2"),
    ],
)
def test_gains(submission, nonlinearity, param, expected):
    """calculate_gain as torch.nn.init.calculate_gain: 1, 1, 5/3, sqrt(2), sqrt(2 / (1 + 0.2^2))."""
    assert_close(
        submission.calculate_gain(nonlinearity, param),
        expected,
        what=f"calculate_gain({nonlinearity!r}, {param})",
        rtol=1e-12,
        atol=0.0,
    )


def moments(w):
    x = w.double().flatten()
    n = x.numel()
    return x, n, float(x.mean()), float(x.pow(2).mean())


def test_xavier_uniform_worked_example(submission):
    """xavier_uniform((256, 512)): U(-a, a) with a = sqrt(6 / 768) = 0.0884, so mean(w^2) = a^2 / 3."""
    w = submission.xavier_uniform((256, 512), seed=0)
    expect(
        isinstance(w, torch.Tensor) and tuple(w.shape) == (256, 512) and w.dtype == torch.float32,
        "xavier_uniform((256, 512)) must return a float32 tensor of shape (256, 512)",
    )
    a = math.sqrt(6 / 768)
    x, n, mean, m2 = moments(w)
    top = float(x.abs().max())
    expect(
        top <= a * (1 + 2**-20) and top >= a * (1 - LOG_TERM / n),
        "the largest |w| must be the bound a = sqrt(6 / (fan_in + fan_out)) = 0.0884 (just below it)",
        detail=f"the largest |w| is {top:.6f}",
        hint="a = gain * sqrt(6 / (fan_in + fan_out)), the bound of the uniform distribution, not its std",
    )
    expect(
        abs(mean) <= a * math.sqrt(2 * LOG_TERM / n),
        "the mean of the entries must be near 0: draw from U(-a, a), not U(0, a)",
        detail=f"the mean is {mean:.3g}",
    )
    expect(
        abs(m2 - a * a / 3) <= a * a * math.sqrt(LOG_TERM / (2 * n)),
        "the mean of w^2 must be a^2 / 3 = 0.0026 (within about 3%)",
        detail=f"mean of w^2 = {m2:.6f}",
    )


@pytest.mark.parametrize(
    "mode, std",
    [
        pytest.param("fan_in", math.sqrt(2 / 512), id="fan_in"),
        pytest.param("fan_out", math.sqrt(2 / 256), id="fan_out"),
    ],
)
def test_kaiming_normal_worked_example(submission, mode, std):
    """kaiming_normal((256, 512), relu): std = sqrt(2 / 512) (fan_in) or sqrt(2 / 256) (fan_out)."""
    w = submission.kaiming_normal((256, 512), mode=mode, nonlinearity="relu", seed=1)
    expect(
        isinstance(w, torch.Tensor) and tuple(w.shape) == (256, 512) and w.dtype == torch.float32,
        "kaiming_normal((256, 512), ...) must return a float32 tensor of shape (256, 512)",
    )
    x, n, mean, m2 = moments(w)
    expect(
        abs(mean) <= 7.3 * std / math.sqrt(n),  # a normal mean: P(beyond 7.3 sigma) = 3e-13
        "the mean of the entries must be near 0",
        detail=f"the mean is {mean:.3g}",
    )
    # n * m2 / std^2 is chi-square with n degrees of freedom (Laurent and Massart's tail bounds)
    low = 1 - 2 * math.sqrt(LOG_TERM / n)
    high = 1 + 2 * math.sqrt(LOG_TERM / n) + 2 * LOG_TERM / n
    expect(
        low <= m2 / std**2 <= high,
        f"the standard deviation must be sqrt(2) / sqrt({512 if mode == 'fan_in' else 256}) = {std:.4f} "
        f"(mode={mode!r}, relu)",
        detail=f"the entries have a root mean square of {math.sqrt(m2):.5f}",
        hint="std = gain / sqrt(fan), with gain = sqrt(2) for relu and fan = shape[1] for fan_in, shape[0] "
        "for fan_out (a standard deviation: normal_(0, std), not the variance)",
    )


def test_same_seed_same_tensor(submission):
    """The same seed gives the same tensor; another seed gives another one."""
    for name, call in [
        ("xavier_uniform", lambda seed: submission.xavier_uniform((64, 32), seed=seed)),
        ("kaiming_normal", lambda seed: submission.kaiming_normal((64, 32), seed=seed)),
    ]:
        first, again, other = call(7), call(7), call(8)
        expect(
            torch.equal(first, again),
            f"{name} with seed=7 gave two different tensors: the same seed must give the same tensor",
            hint="draw from a fresh torch.Generator().manual_seed(seed), passed as generator=, not from "
            "torch's global generator",
        )
        expect(
            not torch.equal(first, other),
            f"{name} gave the same tensor for seeds 7 and 8: seed the generator with `seed`",
        )


def test_deep_relu_stack_keeps_its_scale(submission, seed):
    """50 ReLU layers of width 256 from kaiming_normal(nonlinearity="relu"): the RMS stays within a factor 32.

    The log of the ratio has a spread of about 0.46 around -0.25 (measured over 1000 seeds), so the
    band of a factor 32 either way is 7 spreads away; a gain of 1 instead of sqrt(2) gives 4e-8.
    """
    width, depth, batch = 256, 50, 256
    h = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rms = []
    for layer in range(depth):
        w = submission.kaiming_normal(
            (width, width), mode="fan_in", nonlinearity="relu", seed=seed * 100 + layer
        )
        h = torch.relu(h @ w.double().T)
        rms.append(float(h.pow(2).mean().sqrt()))
    ratio = rms[-1] / rms[0]
    expect(
        1 / 32 <= ratio <= 32,
        "the activations of the 50th layer must keep the scale of the first layer's (within a factor 32)",
        detail=f"RMS after layer 1: {rms[0]:.4g}, after layer 50: {rms[-1]:.4g} (ratio {ratio:.3g})",
        hint="each ReLU layer halves the mean square: std = sqrt(2) / sqrt(fan_in) makes up for it",
    )
