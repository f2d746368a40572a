"""Hidden tests for weight-init: fans and gains exactly against torch.nn.init, the distribution of
both samplers on large linear and convolution weights (both modes, several gains, float64), seeds,
shapes and errors.

The samplers cannot be compared value by value with torch (the order and the method of sampling
are the learner's), so their tests are statistical, with bounds that hold for every seed with a
probability of at least 1 - 1e-12 each:
- a mean of n values in a range of width R is within R * sqrt(ln(2 / p) / (2 n)) of its
  expectation (Hoeffding): the uniform's mean, its mean square, a fraction of entries;
- n * mean(w^2) / std^2 of a normal sample is chi-square with n degrees of freedom, within
  n - 2 sqrt(n x) and n + 2 sqrt(n x) + 2 x, x = ln(1 / p) (Laurent and Massart, 2000);
- the mean of a normal sample is normal: within 7.3 standard errors;
- the largest |w| of n uniform values stays below a (1 - ln(2 / p) / n) with probability
  (1 - ln(2 / p) / n)^n < p / 2.
"""

import math

import pytest
import torch
import torch.nn.init as torch_init  # trusted side only: the oracle

from grader.testing import assert_close, expect, kept_in_runner

P_FAIL = 1e-12
LOG_TERM = math.log(2 / P_FAIL)
NORMAL_Z = 7.3  # two-sided tail of the standard normal beyond 7.3: 2.9e-13
TAIL_2SD = math.erfc(2 / math.sqrt(2))  # P(|Z| > 2) = 0.0455 for a standard normal
MATCH = 0.02  # an estimated scale within 2% of a mistake's names that mistake (the bands are ~1%)

# one wording per mistake
FANS_SWAPPED = (
    "fans swapped? A Linear weight is (out_features, in_features): fan_in = shape[1], fan_out = shape[0]"
)
NO_RECEPTIVE_FIELD = (
    "the kernel left out of the fans? For a convolution weight (out, in, *kernel), both fans are "
    "multiplied by the product of the kernel dimensions"
)
RECEPTIVE_FIELD_ONCE = (
    "the kernel size multiplies both fans: fan_in = shape[1] * k and fan_out = shape[0] * k"
)
LEAKY_DEFAULT = (
    "calculate_gain('leaky_relu') with param None uses a negative slope of 0.01 (F.leaky_relu's "
    "default), not 0"
)
LEAKY_FORMULA = "the leaky_relu gain is sqrt(2 / (1 + negative_slope^2))"
XAVIER_FAN_IN = (
    "Xavier's bound is gain * sqrt(6 / (fan_in + fan_out)), from both fans: sqrt(3 / fan_in) is another "
    "initialisation"
)
XAVIER_STD_AS_BOUND = (
    "the standard deviation used as the bound? U(-a, a) has std a / sqrt(3): a = gain * sqrt(6 / (fan_in + "
    "fan_out)), not sqrt(2 / (fan_in + fan_out))"
)
GAIN_IGNORED = "the gain left out? It multiplies the bound (Xavier) or the standard deviation (Kaiming)"
NOT_UNIFORM = "xavier_uniform must draw from the uniform distribution U(-a, a)"
KAIMING_GAIN_MISSING = (
    "the gain left out? std = gain / sqrt(fan), with gain = calculate_gain(nonlinearity, a)"
)
OTHER_FAN = (
    "the other fan? mode='fan_in' divides by fan_in = shape[1] * k, mode='fan_out' by fan_out = shape[0] * k"
)
VARIANCE_AS_STD = (
    "the variance used as the standard deviation? std = gain / sqrt(fan); its square is the variance"
)
NO_SQRT = "forgot a square root? std = gain / sqrt(fan)"
NOT_NORMAL = (
    "kaiming_normal must draw from the normal distribution: about 4.55% of the entries lie beyond 2 std "
    "(a uniform or a truncated normal with that std has none)"
)
GLOBAL_RNG = (
    "draw from a fresh torch.Generator().manual_seed(seed), passed as generator= to the sampling call, not "
    "from torch's global generator"
)


# ---------------------------------------------------------------------------- oracles


def torch_fans(shape):
    return torch_init._calculate_fan_in_and_fan_out(torch.empty(shape))


def torch_gain(nonlinearity, param=None):
    return float(torch_init.calculate_gain(nonlinearity, param))


def receptive_field(shape):
    return math.prod(shape[2:])


# ---------------------------------------------------------------------------- fans

FAN_SHAPES = [
    pytest.param((3, 5), id="linear-3x5"),
    pytest.param((4096, 1024), id="linear-4096x1024"),
    pytest.param((1, 7), id="linear-one-output"),
    pytest.param((7, 1), id="linear-one-input"),
    pytest.param((16, 8, 5), id="conv1d"),
    pytest.param((128, 64, 3, 3), id="conv2d-3x3"),
    pytest.param((64, 32, 3, 5), id="conv2d-3x5"),
    pytest.param((32, 3, 7, 7), id="conv2d-rgb-stem"),
    pytest.param((8, 4, 3, 3, 3), id="conv3d"),
    pytest.param((64, 32, 1, 1), id="conv2d-1x1"),
]


@pytest.mark.parametrize("shape", FAN_SHAPES)
def test_fan_in_and_fan_out(submission, shape):
    """fan_in_and_fan_out for linear and convolution weights, exactly as torch.nn.init computes them."""
    fan_in, fan_out = torch_fans(shape)
    assert_close(
        submission.fan_in_and_fan_out(shape),
        (fan_in, fan_out),
        what=f"fan_in_and_fan_out({shape})",
        misconceptions={
            FANS_SWAPPED: (fan_out, fan_in),
            NO_RECEPTIVE_FIELD: (shape[1], shape[0]),
            RECEPTIVE_FIELD_ONCE: (fan_in, shape[0]),
            f"{FANS_SWAPPED}; {NO_RECEPTIVE_FIELD}": (shape[0], shape[1]),
        },
    )


@pytest.mark.parametrize("shape", [pytest.param((5,), id="one-dim"), pytest.param((), id="no-dims")])
def test_fans_need_two_dims(submission, shape):
    """A shape of fewer than 2 dimensions has no fans: ValueError, as in torch.nn.init."""
    try:
        submission.fan_in_and_fan_out(shape)
    except ValueError:
        return
    pytest.fail(f"fan_in_and_fan_out({shape}) returned normally; it must raise ValueError")


# ---------------------------------------------------------------------------- gains

GAINS = [
    *(pytest.param(name, None, id=name) for name in ("linear", "conv1d", "conv2d", "conv3d")),
    *(
        pytest.param(name, None, id=name)
        for name in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    ),
    pytest.param("sigmoid", None, id="sigmoid"),
    pytest.param("tanh", None, id="tanh"),
    pytest.param("relu", None, id="relu"),
    pytest.param("selu", None, id="selu"),
    pytest.param("leaky_relu", None, id="leaky_relu-default"),
    pytest.param("leaky_relu", 0, id="leaky_relu-int-0"),
    pytest.param("leaky_relu", 1, id="leaky_relu-int-1"),
    pytest.param("leaky_relu", 0.01, id="leaky_relu-0.01"),
    pytest.param("leaky_relu", 0.2, id="leaky_relu-0.2"),
    pytest.param("leaky_relu", 3.0, id="leaky_relu-3.0"),
    pytest.param("relu", 0.5, id="relu-param-ignored"),
    pytest.param("tanh", 2.0, id="tanh-param-ignored"),
    pytest.param("linear", 3.0, id="linear-param-ignored"),
]


@pytest.mark.parametrize("nonlinearity, param", GAINS)
def test_calculate_gain(submission, nonlinearity, param):
    """calculate_gain for every nonlinearity and leaky_relu slope, against torch.nn.init.calculate_gain."""
    mistakes = {}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        mistakes = {
            LEAKY_DEFAULT: math.sqrt(2.0),
            LEAKY_FORMULA: math.sqrt(2.0 / (1 + slope)),
            f"{LEAKY_FORMULA} (a square root)": 2.0 / (1 + slope**2),
        }
    assert_close(
        submission.calculate_gain(nonlinearity, param),
        torch_gain(nonlinearity, param),
        what=f"calculate_gain({nonlinearity!r}, {param!r})",
        rtol=1e-12,
        atol=0.0,
        misconceptions=mistakes if param is None or nonlinearity == "leaky_relu" else None,
    )


def test_calculate_gain_default_param(submission):
    """calculate_gain("leaky_relu") with param left out: slope 0.01, gain sqrt(2 / 1.0001)."""
    assert_close(
        submission.calculate_gain("leaky_relu"),
        torch_gain("leaky_relu"),
        what="calculate_gain('leaky_relu')",
        rtol=1e-12,
        atol=0.0,
        misconceptions={LEAKY_DEFAULT: math.sqrt(2.0)},
    )


@pytest.mark.parametrize("name", ["gelu", "ReLU", "softmax", ""])
def test_unknown_nonlinearity(submission, name):
    """A nonlinearity calculate_gain does not know raises ValueError (names are case-sensitive)."""
    try:
        submission.calculate_gain(name)
    except ValueError:
        return
    pytest.fail(f"calculate_gain({name!r}) returned normally; it must raise ValueError")


# ---------------------------------------------------------------------------- statistics


def is_tensor(w, shape, dtype, what):
    expect(isinstance(w, torch.Tensor), f"{what} must return a torch.Tensor")
    expect(tuple(w.shape) == tuple(shape), f"{what} must return a tensor of shape {tuple(shape)}")
    name = str(dtype).removeprefix("torch.")
    expect(w.dtype == dtype, f"{what} must return a {name} tensor")
    expect(bool(torch.isfinite(w).all()), f"{what} has non-finite values")


def named(estimate, candidates):
    """The mistake whose scale the estimate matches (within MATCH), or ''."""
    for label, value in candidates.items():
        if value > 0 and abs(estimate / value - 1) < MATCH:
            return label
    return ""


def check_uniform(w, bound, what, candidates):
    """w is a sample of U(-bound, bound): its extremes, mean, mean square and spread."""
    x = w.double().flatten()
    n = x.numel()
    top, mean = float(x.abs().max()), float(x.mean())
    m2, inner = float(x.pow(2).mean()), float((x.abs() < bound / 2).double().mean())
    m2_band = bound**2 * math.sqrt(LOG_TERM / (2 * n))
    hint = named(top, candidates)
    if not hint and abs(m2 - bound**2 / 3) > m2_band and abs(m2 / (bound**2 / 3) - 3) < 3 * MATCH:
        hint = NOT_UNIFORM  # the variance of the bound itself: a normal with std a, for one
    stats = (
        f"n = {n}, largest |w| {top:.6g}, mean {mean:.3g}, mean of w^2 {m2:.6g}, share below a/2 {inner:.4f}"
    )
    expect(
        top <= bound * (1 + 2**-20),
        f"{what}: some entries lie outside [-a, a], a = gain * sqrt(6 / (fan_in + fan_out)) = {bound:.6g}",
        detail=stats,
        hint=hint or NOT_UNIFORM,
    )
    expect(
        top >= bound * (1 - LOG_TERM / n),
        f"{what}: the entries never come near the bound a = {bound:.6g}: the bound is too small",
        detail=stats,
        hint=hint,
    )
    expect(
        abs(m2 - bound**2 / 3) <= m2_band,
        f"{what}: the mean of w^2 is not a^2 / 3, the variance of U(-a, a)",
        detail=stats,
        hint=hint,
    )
    expect(
        abs(mean) <= bound * math.sqrt(2 * LOG_TERM / n),
        f"{what}: the mean of the entries is not near 0: draw from U(-a, a), symmetric around 0",
        detail=stats,
    )
    expect(
        abs(inner - 0.5) <= math.sqrt(LOG_TERM / (2 * n)),
        f"{what}: the entries are not spread evenly over [-a, a] (half of them should lie within a / 2)",
        detail=stats,
        hint=NOT_UNIFORM,
    )


def check_normal(w, std, what, candidates):
    """w is a sample of N(0, std^2): its mean, mean square and tails."""
    x = w.double().flatten()
    n = x.numel()
    mean, m2 = float(x.mean()), float(x.pow(2).mean())
    tail = float((x.abs() > 2 * std).double().mean())
    x_term = math.log(1 / P_FAIL)
    low, high = 1 - 2 * math.sqrt(x_term / n), 1 + 2 * math.sqrt(x_term / n) + 2 * x_term / n
    stats = f"n = {n}, mean {mean:.3g}, root mean square {math.sqrt(m2):.6g}, share beyond 2 std {tail:.4f}"
    expect(
        low <= m2 / std**2 <= high,
        f"{what}: the standard deviation of the entries is not gain / sqrt(fan) = {std:.6g}",
        detail=stats,
        hint=named(math.sqrt(m2), candidates),
    )
    expect(
        abs(mean) <= NORMAL_Z * std / math.sqrt(n),
        f"{what}: the mean of the entries is not near 0",
        detail=stats,
    )
    expect(
        abs(tail - TAIL_2SD) <= math.sqrt(LOG_TERM / (2 * n)),
        f"{what}: the entries are not normally distributed (about 4.55% of them should lie beyond 2 std)",
        detail=stats,
        hint=NOT_NORMAL,
    )


def distinct(found, correct):
    """The mistakes whose scale can be told from the right one and from every other mistake's: a
    scale that two mistakes share names neither."""
    far = {label: v for label, v in found.items() if abs(v / correct - 1) > 3 * MATCH}
    return {
        label: v
        for label, v in far.items()
        if all(abs(v / w - 1) > 3 * MATCH for other, w in far.items() if other != label)
    }


def xavier_mistakes(shape, gain):
    fan_in, fan_out = torch_fans(shape)
    k = receptive_field(shape)
    found = {
        XAVIER_FAN_IN: gain * math.sqrt(3 / fan_in),
        XAVIER_STD_AS_BOUND: gain * math.sqrt(2 / (fan_in + fan_out)),
        "Xavier's bound uses fan_in + fan_out: gain * sqrt(6 / (fan_in + fan_out))": gain
        * math.sqrt(3 / (fan_in + fan_out)),
    }
    if k > 1:
        found[NO_RECEPTIVE_FIELD] = gain * math.sqrt(6 / (shape[0] + shape[1]))
    if gain != 1:
        found[GAIN_IGNORED] = math.sqrt(6 / (fan_in + fan_out))
    return distinct(found, gain * math.sqrt(6 / (fan_in + fan_out)))


def kaiming_mistakes(shape, a, mode, nonlinearity):
    fan_in, fan_out = torch_fans(shape)
    fan, other = (fan_in, fan_out) if mode == "fan_in" else (fan_out, fan_in)
    k = receptive_field(shape)
    gain = torch_gain(nonlinearity, a)
    found = {
        KAIMING_GAIN_MISSING: 1 / math.sqrt(fan),
        OTHER_FAN: gain / math.sqrt(other),
        VARIANCE_AS_STD: gain**2 / fan,
        NO_SQRT: gain / fan,
    }
    if k > 1:
        found[NO_RECEPTIVE_FIELD] = gain / math.sqrt(fan / k)
    return distinct(found, gain / math.sqrt(fan))


XAVIER_CASES = [
    pytest.param((256, 4096), 1.0, id="linear-256x4096"),
    pytest.param((4096, 256), 5 / 3, id="linear-4096x256-tanh-gain"),
    pytest.param((1024, 1024), 1.0, id="linear-square"),
    pytest.param((128, 64, 8, 8), math.sqrt(2), id="conv2d-8x8-relu-gain"),
    pytest.param((128, 32, 4, 4, 4), 0.5, id="conv3d-gain-0.5"),
]


@pytest.mark.parametrize("shape, gain", XAVIER_CASES)
def test_xavier_uniform_distribution(submission, seed, shape, gain):
    """xavier_uniform draws from U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)): checked on ~1M entries."""
    what = f"xavier_uniform({shape}, gain={gain:.4g})"
    w = submission.xavier_uniform(shape, gain, seed=seed)
    is_tensor(w, shape, torch.float32, what)
    fan_in, fan_out = torch_fans(shape)
    check_uniform(w, gain * math.sqrt(6 / (fan_in + fan_out)), what, xavier_mistakes(shape, gain))


KAIMING_CASES = [
    pytest.param((256, 4096), {}, id="linear-defaults"),
    pytest.param((256, 4096), {"mode": "fan_out", "nonlinearity": "relu"}, id="linear-fan_out-relu"),
    pytest.param((4096, 256), {"nonlinearity": "linear"}, id="linear-tall-gain-1"),
    pytest.param((1024, 1024), {"a": 0.2}, id="leaky_relu-0.2"),
    pytest.param((512, 2048), {"nonlinearity": "tanh", "mode": "fan_out"}, id="tanh-fan_out"),
    pytest.param((192, 64, 8, 8), {"nonlinearity": "relu"}, id="conv2d-relu"),
    pytest.param((192, 64, 8, 8), {"mode": "fan_out", "nonlinearity": "relu"}, id="conv2d-fan_out-relu"),
    pytest.param((64, 128, 5, 5, 5), {"nonlinearity": "selu"}, id="conv3d-selu"),
]


@pytest.mark.parametrize("shape, kwargs", KAIMING_CASES)
def test_kaiming_normal_distribution(submission, seed, shape, kwargs):
    """kaiming_normal draws from N(0, std^2), std = gain / sqrt(fan): checked on ~1M entries."""
    a, mode = kwargs.get("a", 0.0), kwargs.get("mode", "fan_in")
    nonlinearity = kwargs.get("nonlinearity", "leaky_relu")
    what = f"kaiming_normal({shape}, a={a}, mode={mode!r}, nonlinearity={nonlinearity!r})"
    w = submission.kaiming_normal(shape, seed=seed, **kwargs)
    is_tensor(w, shape, torch.float32, what)
    fan_in, fan_out = torch_fans(shape)
    std = torch_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    check_normal(w, std, what, kaiming_mistakes(shape, a, mode, nonlinearity))


def test_float64(submission, seed):
    """dtype=torch.float64 gives float64 tensors, with the same distributions."""
    shape = (512, 1024)
    fan_in, fan_out = torch_fans(shape)
    w = submission.xavier_uniform(shape, 1.0, seed=seed, dtype=torch.float64)
    is_tensor(w, shape, torch.float64, "xavier_uniform(..., dtype=torch.float64)")
    what = "xavier_uniform((512, 1024), dtype=float64)"
    check_uniform(w, math.sqrt(6 / (fan_in + fan_out)), what, xavier_mistakes(shape, 1.0))
    w = submission.kaiming_normal(shape, nonlinearity="relu", seed=seed + 1, dtype=torch.float64)
    is_tensor(w, shape, torch.float64, "kaiming_normal(..., dtype=torch.float64)")
    what = "kaiming_normal((512, 1024), relu, dtype=float64)"
    check_normal(w, math.sqrt(2 / fan_in), what, kaiming_mistakes(shape, 0.0, "fan_in", "relu"))


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((3, 5), id="linear"),
        pytest.param((8, 4, 3), id="conv1d"),
        pytest.param((2, 3, 2, 2, 2), id="conv3d"),
    ],
)
def test_small_shapes(submission, seed, shape):
    """Both samplers return float32 tensors of the asked shape by default, within their bounds."""
    fan_in, fan_out = torch_fans(shape)
    w = submission.xavier_uniform(shape, seed=seed)
    is_tensor(w, shape, torch.float32, f"xavier_uniform({shape})")
    expect(
        float(w.abs().max()) <= math.sqrt(6 / (fan_in + fan_out)) * (1 + 2**-20),
        f"xavier_uniform({shape}): some entries lie outside [-a, a]",
        hint="a = gain * sqrt(6 / (fan_in + fan_out)), both fans multiplied by the kernel size",
    )
    is_tensor(submission.kaiming_normal(shape, seed=seed), shape, torch.float32, f"kaiming_normal({shape})")


# ---------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("function", ["xavier_uniform", "kaiming_normal"])
def test_seeds(submission, seed, function):
    """The same seed gives the same tensor, also with other calls in between; other seeds differ."""
    call = getattr(submission, function)
    shape = (48, 32, 3)
    first = call(shape, seed=seed)
    second = call(shape, seed=seed + 1)
    again = call(shape, seed=seed)
    expect(
        isinstance(first, torch.Tensor) and isinstance(again, torch.Tensor) and torch.equal(first, again),
        f"{function} gave two different tensors for the same seed (with a call of another seed between them)",
        hint=GLOBAL_RNG,
    )
    expect(
        not torch.equal(first, second),
        f"{function} gave the same tensor for two different seeds: the seed must choose the numbers",
        hint=GLOBAL_RNG,
    )
    expect(
        not torch.equal(first, call(shape, seed=seed + 12345)),
        f"{function} gave the same tensor for two different seeds: the seed must choose the numbers",
        hint=GLOBAL_RNG,
    )


@pytest.mark.parametrize("function", ["xavier_uniform", "kaiming_normal"])
def test_global_generator_left_alone(submission, seed, function):
    """Sampling leaves torch's global generator alone: it does not reseed it (torch.manual_seed)."""
    call = getattr(submission, function)
    # Draw from the runner's global generator after each of two calls with the same seed: a
    # sampler that leaves it alone lets its stream run on, so the draws differ; one that reseeds
    # it restarts the same stream, so they are equal.
    draws = []
    for _ in range(2):
        call((8, 8), seed=seed)
        scratch = kept_in_runner(call, torch.zeros(64))
        scratch.call("uniform_")
        draws.append(scratch.read_back())
    expect(
        not torch.equal(draws[0], draws[1]),
        f"{function} reseeded torch's global generator (torch.manual_seed): other code's random numbers "
        "then repeat at every call",
        hint=GLOBAL_RNG,
    )


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("mode", ["fan_avg", "in", ""])
def test_invalid_mode(submission, mode):
    """kaiming_normal with a mode other than "fan_in" or "fan_out" raises ValueError."""
    try:
        submission.kaiming_normal((16, 8), mode=mode, seed=0)
    except ValueError:
        return
    pytest.fail(f"kaiming_normal(..., mode={mode!r}) returned normally; it must raise ValueError")


@pytest.mark.parametrize("function", ["xavier_uniform", "kaiming_normal"])
def test_samplers_need_two_dims(submission, function):
    """A weight of fewer than 2 dimensions has no fans: both samplers raise ValueError."""
    try:
        getattr(submission, function)((7,), seed=0)
    except ValueError:
        return
    pytest.fail(f"{function}((7,), seed=0) returned normally; it must raise ValueError")
