"""Hidden tests for cross-entropy: random shapes against torch's F.cross_entropy in float64
(trusted side only), large logits, ignored positions, inputs left unchanged, gradients through
the runner, dtypes and precision, and speed."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: submissions may not call it

from grader.testing import (
    Call,
    assert_close,
    assert_gradients_close,
    assert_invariant,
    call_unchanged,
    dtype_params,
    expect,
    shrink,
    tolerance,
)

IGNORED_IN_MEAN = (
    "ignored positions counted in the mean? Divide by the number of positions that are not ignored"
)
NO_MAX = "no max subtracted: exp overflows? exp(89) is already inf in float32; subtract each row's max first"
UNDERFLOW = (
    "log of softmax underflows: use log-sum-exp? A probability that rounds to 0 gives log(0) = -inf; "
    "compute log p = x - m - log(sum(exp(x - m))) directly"
)
SUM = "summed instead of averaged? The loss is the MEAN over the positions that count"
MEAN_OVER_VOCAB = (
    "averaged over the vocabulary too? Take the mean over positions only, not over positions x classes"
)


# Values are compared with the loss computed in float64 on the same inputs. A loss computed in
# its output dtype (float32 for float32, float16 and bfloat16 logits; float64 for float64) rounds
# each row's max m and target logit x[t] and what it adds to them, so its error is a few units of
# eps(dtype) x SCALE, where SCALE = mean over the kept rows of |m| + |x[t]|, plus log V (which
# bounds the loss itself). Measured over every case of these tests and 30 seeds each: at most 1.5
# units for F.cross_entropy and for the reference, at most 0.5 for a float64 computation rounded
# at the end; 6,500 units or more for sums taken in bfloat16, up to 5e8 for a float64 loss
# computed in float32. The tolerance is 16 to 32 units (SCALE rounded up to a power of two): every
# computation at least as precise as the reference passes, and those wrong ones fail by orders of
# magnitude.
ULPS = 16


def float64_loss(logits, targets, ignore_index=-100):
    """The loss in float64 on the same inputs, and the SCALE of its rounding error (see ULPS)."""
    vocab = logits.shape[-1]
    x = logits.detach().double().reshape(-1, vocab)
    t = targets.reshape(-1)
    keep = t != ignore_index
    if not keep.any():
        return torch.zeros((), dtype=torch.float64), 1.0
    kept, kept_t = x[keep], t[keep]
    m = kept.max(dim=-1).values
    target_logit = kept.gather(-1, kept_t[:, None]).squeeze(-1)
    scale = float((m.abs() + target_logit.abs()).mean()) + math.log(vocab)
    return F.cross_entropy(kept, kept_t), scale


def output_dtype(logits):
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def local_loss(logits, targets, ignore_index=-100):
    """The convention, differentiable, computed in float64 and rounded to the loss's dtype at the
    end (what the gradients are compared with): F.cross_entropy with the class dimension last,
    and 0 (not NaN) when every position is ignored."""
    vocab = logits.shape[-1]
    x = logits.double().reshape(-1, vocab)
    t = targets.reshape(-1)
    if not (t != ignore_index).any():
        return (x.sum() * 0).to(output_dtype(logits))
    return F.cross_entropy(x, t, ignore_index=ignore_index).to(output_dtype(logits))


def mistakes(logits, targets, ignore_index=-100):
    """The outputs of the likely mistakes, to name the one a submission made."""
    vocab = logits.shape[-1]
    x = (logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits).reshape(-1, vocab)
    t = targets.reshape(-1)
    keep = t != ignore_index
    per_position = F.cross_entropy(x, t, ignore_index=ignore_index, reduction="none")  # 0 where ignored
    total = per_position.sum()
    found = {IGNORED_IN_MEAN: total / t.numel()} if not keep.all() else {}  # most likely first
    found[SUM] = total
    found[MEAN_OVER_VOCAB] = total / (keep.sum() * vocab)
    return found


def make(rng, lead, vocab, *, scale=3.0, ignored=0.0, ignore_index=-100, dtype=torch.float32):
    logits = torch.from_numpy(rng.standard_normal((*lead, vocab)).astype(np.float32) * np.float32(scale))
    targets = torch.from_numpy(np.asarray(rng.integers(0, vocab, size=lead))).long()
    if ignored:
        targets[torch.from_numpy(rng.random(lead) < ignored)] = ignore_index
    return logits.to(dtype), targets


def check_value(got, logits, targets, ignore_index=-100, *, nan_hint=NO_MAX, inf_hint=UNDERFLOW, hint=""):
    """The loss against the float64 loss, within the rounding error of its dtype (see ULPS); a NaN
    or an infinite loss gets the hint of its likely cause."""
    expect(isinstance(got, torch.Tensor), "cross_entropy must return a torch.Tensor")
    expect(got.dim() == 0, "cross_entropy must return a scalar (a 0-dim tensor): the mean over positions")
    want, scale = float64_loss(logits, targets, ignore_index)
    if torch.isnan(got):
        expect(False, "the loss is NaN where a finite value was expected", hint=nan_hint)
    if torch.isinf(got):
        expect(False, "the loss is infinite where a finite value was expected", hint=inf_hint)
    dtype = output_dtype(logits)
    expect(
        got.dtype == dtype,
        "the loss has the wrong dtype: float32 for float32, float16 and bfloat16 logits, float64 for float64",
        hint="convert half-precision logits to float32 first; compute float32 and float64 in their own dtype",
    )
    # SCALE is rounded up to a power of two: a failure shows the tolerance, which must not tell
    # more about the hidden logits than their order of magnitude
    assert_close(
        got,
        want.to(dtype),  # the value is float64's, rounded once to the loss's dtype
        what="the loss",
        rtol=0.0,
        atol=ULPS * torch.finfo(dtype).eps * 2.0 ** math.ceil(math.log2(scale)),
        misconceptions=mistakes(logits, targets, ignore_index),
        hint=hint,
    )


# ---------------------------------------------------------------------------- values


def test_random_shapes(submission, seed):
    """Random logits of shape (B, T, V) with some ignored positions, against F.cross_entropy."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        logits, targets = make(rng, (sizes["B"], sizes["T"]), sizes["V"], ignored=0.2)
        check_value(submission.cross_entropy(logits, targets), logits, targets)

    # shrink() also tries every seed below the failing one: start it from a small one
    shrink(check, {"B": 4, "T": 33, "V": 97}, seed=seed % 1000, minimum={"B": 1, "T": 1, "V": 3}, budget=40)


@pytest.mark.parametrize(
    "lead, vocab",
    [
        pytest.param((), 10, id="one-position-no-leading-dims"),
        pytest.param((7,), 3, id="rows-of-3-classes"),
        pytest.param((2, 5), 50257, id="gpt2-vocabulary"),
        pytest.param((2, 3, 4), 11, id="three-leading-dims"),
        pytest.param((1, 1), 2, id="binary"),
    ],
)
def test_shapes(submission, rng, lead, vocab):
    """Any number of leading dimensions (also none): targets have the shape of logits without the last."""
    logits, targets = make(rng, lead, vocab)
    check_value(submission.cross_entropy(logits, targets), logits, targets)


def test_is_a_mean(submission):
    """Doubling the batch with a copy of itself leaves the mean unchanged."""
    rng = np.random.default_rng(5)
    logits, targets = make(rng, (5,), 17)
    once = submission.cross_entropy(logits, targets)
    twice = submission.cross_entropy(torch.cat([logits, logits]), torch.cat([targets, targets]))
    expect(
        math.isclose(float(once), float(twice), rel_tol=1e-5, abs_tol=1e-6),
        "the loss of a batch and of the same batch twice differ: the loss must be a mean over positions",
        hint=SUM,
    )


@pytest.mark.parametrize(
    "scale",
    [pytest.param(100.0, id="x100"), pytest.param(1000.0, id="x1000"), pytest.param(1e5, id="x100000")],
)
def test_large_logits(submission, rng, scale):
    """Logits in the thousands: exp overflows and softmax underflows, the loss must not."""
    logits, targets = make(rng, (6, 40), 64, scale=scale, ignored=0.1)
    check_value(submission.cross_entropy(logits, targets), logits, targets)


def test_shift_invariance(submission, rng):
    """Adding the same constant to every logit of a row changes nothing (softmax is shift-invariant)."""
    logits, targets = make(rng, (8, 16), 100)
    want = float64_loss(logits, targets)[0].float()

    def loss(shift):
        return submission.cross_entropy(logits + shift, targets)

    assert_invariant(
        loss,
        (),
        {"shift=0": {"shift": 0.0}, "shift=+200": {"shift": 200.0}, "shift=-200": {"shift": -200.0}},
        expected=want,
        rtol=1e-4,
        atol=1e-4,
        what="the loss",
        hint=NO_MAX,
    )


def test_confident_and_wrong(submission):
    """A logit gap of 1000 against the target: the loss is the gap, about 1000, not inf."""
    logits = torch.tensor([[0.0, 1000.0, -5.0], [1000.0, 0.0, 0.0], [3.0, 3.0, 3.0]])
    targets = torch.tensor([0, 0, 2])
    check_value(submission.cross_entropy(logits, targets), logits, targets)


# ---------------------------------------------------------------------------- ignore_index


@pytest.mark.parametrize(
    "ignore_index, ignored",
    [
        pytest.param(-100, 0.3, id="default-minus-100"),
        pytest.param(-1, 0.5, id="minus-1"),
        pytest.param(0, 0.0, id="class-0-ignored"),
        pytest.param(-100, 0.9, id="mostly-ignored"),
    ],
)
def test_ignore_index(submission, rng, ignore_index, ignored):
    """Positions whose target is ignore_index count neither in the sum nor in the denominator."""
    logits, targets = make(rng, (4, 25), 30, ignored=ignored, ignore_index=ignore_index)
    got = submission.cross_entropy(logits, targets, ignore_index=ignore_index)
    check_value(got, logits, targets, ignore_index)


def test_all_positions_ignored(submission, rng):
    """Every position ignored: the loss is 0 (F.cross_entropy gives NaN), and so are its gradients."""
    logits, targets = make(rng, (3, 4), 9, ignored=1.0)
    got = submission.cross_entropy(logits, targets)
    expect(isinstance(got, torch.Tensor), "cross_entropy must return a torch.Tensor")
    expect(
        not torch.isnan(got),
        "the loss is NaN when every position is ignored",
        hint="0 positions count: 0 / 0 is NaN. Divide by max(count, 1) so the loss is 0",
    )
    assert_close(got, torch.tensor(0.0), what="the loss when every position is ignored")
    logits.requires_grad_(True)
    assert_gradients_close(
        submission.cross_entropy,
        local_loss,
        (logits, targets),
        grad_output=torch.tensor(1.0),
        names=("logits",),
        hint="with every position ignored the loss is 0, and so is its gradient",
    )


def test_inputs_left_unchanged(submission, rng):
    """cross_entropy leaves logits and targets as they were (no ignored target replaced in place)."""
    logits, targets = make(rng, (4, 9), 13, ignored=0.3)
    targets[0, 0] = -100  # at least one ignored position
    got = call_unchanged(
        submission.cross_entropy,
        logits,
        targets,
        names=("logits", "targets"),
        what="cross_entropy",
        hint="build new tensors: torch.where(keep, targets, 0) instead of targets[...] = 0, and x - m "
        "instead of subtracting in place",
    )
    # only the result's type here: the values are checked in test_ignore_index (default-minus-100)
    expect(isinstance(got, torch.Tensor), "cross_entropy must return a torch.Tensor")


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "lead, vocab, scale, ignored",
    [
        pytest.param((4, 9), 13, 2.0, 0.0, id="plain"),
        pytest.param((3, 8), 20, 2.0, 0.4, id="with-ignored"),
        pytest.param((2, 6), 16, 500.0, 0.2, id="large-logits"),
    ],
)
def test_gradients(submission, rng, lead, vocab, scale, ignored):
    """Backward through your loss gives the gradient of F.cross_entropy: (softmax - onehot) / count."""
    logits, targets = make(rng, lead, vocab, scale=scale, ignored=ignored)
    check_value(submission.cross_entropy(logits, targets), logits, targets)  # the value first
    logits.requires_grad_(True)
    assert_gradients_close(
        submission.cross_entropy,
        local_loss,
        (logits, targets),
        grad_output=torch.tensor(0.75),
        names=("logits",),
        hint="build the loss from differentiable tensor operations only (no .item(), no .detach() of "
        "the log-sum-exp, no torch.no_grad())",
    )


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", dtype_params("float64", "float32", "float16", "bfloat16"))
def test_dtypes(submission, rng, dtype):
    """float64 and float32 stay in their dtype; float16 and bfloat16 are computed in float32."""
    logits, targets = make(rng, (16, 64), 1000, scale=4.0, ignored=0.1, dtype=dtype)
    got = submission.cross_entropy(logits, targets)
    half = dtype in (torch.float16, torch.bfloat16)
    if half:
        expect(
            isinstance(got, torch.Tensor) and got.dtype == torch.float32,
            "for float16 and bfloat16 logits the loss must be a float32 tensor",
            hint="convert the logits to float32 first: a sum of 1000 exponentials in half precision loses "
            "most of its digits",
        )
    precision = (
        "float64 logits give a float64 loss with float64's precision: compute it in float64 throughout, "
        "not through float32"
    )
    check_value(got, logits, targets, hint=precision if dtype == torch.float64 else "")


def test_float16_beyond_its_range(submission, rng):
    """float16 logits near its largest value (65504): differences and losses overflow float16."""
    logits, targets = make(rng, (8, 32), 128, scale=20000.0)
    logits = logits.clamp(-60000, 60000).half()
    half_hint = (
        "convert the logits to float32 before anything else: x - max reaches 120000, beyond float16's 65504"
    )
    got = submission.cross_entropy(logits, targets)
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float32,
        "for float16 logits the loss must be a float32 tensor",
        hint=half_hint,
    )
    check_value(got, logits, targets, nan_hint=half_hint, inf_hint=half_hint)


def test_gradient_dtype_half(submission, rng):
    """Backward through a float16 loss gives float16 gradients, as autograd does through .float()."""
    logits, targets = make(rng, (4, 8), 32, dtype=torch.float16)
    logits.requires_grad_(True)
    assert_gradients_close(
        submission.cross_entropy,
        local_loss,
        (logits, targets),
        grad_output=torch.tensor(1.0),
        names=("logits",),
        hint="float16 logits: convert them to float32 and build the loss from differentiable operations; "
        "the loss is float32 and autograd hands the gradient back in float16",
        **tolerance(torch.float16),
    )


# ---------------------------------------------------------------------------- speed

# Many short rows: 32768 positions of 64 classes, where a loop's cost per row shows. Measured on a
# 2-core machine: the reference takes about 13 ms a call, a Python loop over the rows about 25
# times as long, while vectorised variants stay well within the limit (a full log-softmax then
# gather about 1x, a one-hot mask about 2x). `block_ms` in exercise.toml puts several calls in a
# block, which keeps the reference's block times steady on a busy machine.
N, V = 32768, 64


@pytest.mark.performance
def test_speed(perf):
    """The loss on (32768, 64) logits, against the reference's CPU time."""

    def make_call(rng):
        logits, targets = make(rng, (N,), V, ignored=0.05)
        return Call("cross_entropy", logits, targets)

    perf.measure(
        "speed",
        make_call,
        hint="a Python loop over the rows? Compute the max, the log-sum-exp and the target logits of all "
        "rows at once with tensor operations along the last dimension",
    )
