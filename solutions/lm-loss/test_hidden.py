"""Hidden tests for lm-loss: random batches against torch's F.cross_entropy on the shifted logits and
tokens (trusted side only), padding of different lengths, masked prompts, ignore_index values, no
counted target, large logits, dtypes, gradients through the runner, perplexity, and inputs left
unchanged."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: submissions may not call it

from grader.testing import assert_close, assert_gradients_close, call_unchanged, dtype_params, expect, shrink

HALF = (torch.float16, torch.bfloat16)

# one wording per mistake, the same as in the public tests
NO_SHIFT = "no shift? logits[:, t] predict tokens[:, t + 1]: pair logits[:, :-1] with tokens[:, 1:]"
SHIFT_BACKWARDS = (
    "shifted the wrong way? logits[:, t] predict the NEXT token: pair logits[:, :-1] with tokens[:, 1:], "
    "not logits[:, 1:] with tokens[:, :-1]"
)
SUMMED = "summed instead of averaged? The loss is the mean over the counted target tokens"
PADDING_COUNTED = (
    "ignored targets counted? A prediction whose target is ignore_index counts neither in the sum nor "
    "in the number of tokens"
)
INPUT_MASK = (
    "masked by the input position? The mask follows the TARGET: drop position t when "
    "tokens[:, t + 1] == ignore_index"
)
NO_TARGET_NAN = "no target counts: 0 / 0 is NaN. Divide by max(count, 1) so the loss is 0"
PPL_MEAN_OF_EXP = (
    "perplexity as the mean of per-token exp(loss)? It is exp of the MEAN loss: exp(lm_loss(...))"
)
MEAN_OF_MEANS = (
    "a mean of per-sequence means? Take one mean over every counted target token of the batch: "
    "sequences with more targets weigh more"
)
PPL_OF_MEANS = "perplexity averaged per sequence? It is exp of the one mean loss over the batch's tokens"
DIVIDED_BY_T = "divided by T instead of the number of targets? T tokens give T - 1 predictions"
UNSTABLE = (
    "non-finite loss for large logits: log of softmax underflows? Use torch.log_softmax (or the log-sum-exp "
    "with the max subtracted), never log(softmax(x))"
)
GRADIENT_HINT = (
    "the loss is right but its gradient is not: build it from differentiable tensor operations only "
    "(no .item(), .detach() or torch.no_grad())"
)


# Values are compared with the loss computed in float64 on the same inputs, as in the cross-entropy
# exercise: a loss computed in its output dtype rounds each row's log-sum-exp and target logit, so
# its error is a few units of eps(dtype) x SCALE, SCALE = mean over the counted rows of
# |max| + |target logit|, plus log V. The reference, F.cross_entropy and F.log_softmax-based losses
# stay within 2 units; the tolerance is 16 to 32 (SCALE rounded up to a power of two). A sum in
# bfloat16, or a float64 loss through float32, fails by orders of magnitude.
ULPS = 16


def shifted(logits, tokens):
    """(logits[:, :-1] as (N, V), tokens[:, 1:] as (N,)): the pairs the loss is taken over."""
    vocab = logits.shape[-1]
    return logits[:, :-1].reshape(-1, vocab), tokens[:, 1:].reshape(-1)


def output_dtype(logits):
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def oracle(logits, tokens, ignore_index=-100):
    """The loss in float64 from torch's F.cross_entropy on the shifted pairs (0 when none counts),
    and the SCALE of its rounding error (see ULPS)."""
    x, t = shifted(logits.detach().double(), tokens)
    keep = t != ignore_index
    if not keep.any():
        return torch.zeros((), dtype=torch.float64), 1.0
    kept, kept_t = x[keep], t[keep]
    target_logit = kept.gather(-1, kept_t[:, None]).squeeze(-1)
    scale = float((kept.max(dim=-1).values.abs() + target_logit.abs()).mean()) + math.log(x.shape[-1])
    return F.cross_entropy(x, t, ignore_index=ignore_index), scale


def local_loss(logits, tokens, ignore_index=-100):
    """The convention, differentiable, computed in float64 through F.cross_entropy and rounded to
    the loss's dtype: what the gradients are compared with."""
    x, t = shifted(logits.double(), tokens)
    if not (t != ignore_index).any():
        return (logits.double().sum() * 0).to(output_dtype(logits))
    return F.cross_entropy(x, t, ignore_index=ignore_index).to(output_dtype(logits))


def per_token(logits, tokens, ignore_index=-100, *, shift=1):
    """-log p of each (logit row, target) pair in float64, and the mask of those that count.
    shift=1 is right; 0 pairs logits[t] with tokens[t]; -1 pairs logits[t + 1] with tokens[t]."""
    x = logits.detach().double()
    if shift == 1:
        x, t = x[:, :-1], tokens[:, 1:]
    elif shift == 0:
        t = tokens
    else:
        x, t = x[:, 1:], tokens[:, :-1]
    keep = t != ignore_index
    nll = -torch.log_softmax(x, dim=-1).gather(-1, torch.where(keep, t, 0).unsqueeze(-1)).squeeze(-1)
    return nll, keep


def masked_mean(nll, keep):
    return (nll * keep).sum() / keep.sum().clamp(min=1)


def mistakes(logits, tokens, ignore_index=-100):
    """What the likely mistakes give for these inputs (float64, rounded to the loss's dtype)."""
    dtype = output_dtype(logits)
    nll, keep = per_token(logits, tokens, ignore_index)
    found = {
        NO_SHIFT: masked_mean(*per_token(logits, tokens, ignore_index, shift=0)),
        SHIFT_BACKWARDS: masked_mean(*per_token(logits, tokens, ignore_index, shift=-1)),
        SUMMED: (nll * keep).sum(),
        MEAN_OF_MEANS: ((nll * keep).sum(1) / keep.sum(1).clamp(min=1)).mean(),
        PADDING_COUNTED: nll.mean(),
        INPUT_MASK: masked_mean(nll, tokens[:, :-1] != ignore_index),
        DIVIDED_BY_T: (nll * keep).sum() / tokens.numel(),
    }
    return {label: value.to(dtype) for label, value in found.items()}


def check_loss(got, logits, tokens, ignore_index=-100, *, hint=""):
    """The loss against torch's float64 loss, within the rounding error of its dtype (see ULPS)."""
    expect(isinstance(got, torch.Tensor), "lm_loss must return a torch.Tensor")
    expect(got.dim() == 0, "lm_loss must return a 0-dim tensor: one mean over the batch's target tokens")
    want, scale = oracle(logits, tokens, ignore_index)
    if torch.isnan(got):
        expect(False, "the loss is NaN where a number was expected", hint=hint or NO_TARGET_NAN)
    dtype = output_dtype(logits)
    expect(
        got.dtype == dtype,
        "the loss has the wrong dtype: float32 for float32, float16 and bfloat16 logits, float64 for float64",
        hint="convert half-precision logits to float32 first; compute float32 and float64 in their own dtype",
    )
    # SCALE is rounded up to a power of two: a failure shows the tolerance, which must not tell more
    # about the hidden logits than their order of magnitude
    assert_close(
        got,
        want.to(dtype),
        what="the loss",
        rtol=0.0,
        atol=ULPS * torch.finfo(dtype).eps * 2.0 ** math.ceil(math.log2(scale)),
        misconceptions=mistakes(logits, tokens, ignore_index),
        hint=hint,
    )


def make(rng, batch, length, vocab, *, scale=3.0, dtype=torch.float32):
    logits = torch.from_numpy(
        rng.standard_normal((batch, length, vocab)).astype(np.float32) * np.float32(scale)
    )
    tokens = torch.from_numpy(rng.integers(0, vocab, size=(batch, length))).long()
    return logits.to(dtype), tokens


def right_pad(rng, tokens, ignore_index=-100):
    """Each sequence padded at the end to a different length (at least 2 real tokens each)."""
    tokens = tokens.clone()
    length = tokens.shape[1]
    for b in range(tokens.shape[0]):
        real = int(rng.integers(2, length + 1))
        tokens[b, real:] = ignore_index
    return tokens


# ---------------------------------------------------------------------------- the loss


def test_random_batches(submission, seed):
    """Random batches with right padding of different lengths, against F.cross_entropy on shifted pairs."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        logits, tokens = make(rng, sizes["B"], sizes["T"], sizes["V"])
        tokens = right_pad(rng, tokens)
        check_loss(submission.lm_loss(logits, tokens), logits, tokens)

    # shrink() also tries every seed below the failing one: start it from a small one
    shrink(check, {"B": 5, "T": 24, "V": 50}, seed=seed % 1000, minimum={"B": 2, "T": 3, "V": 3}, budget=40)


def test_padding_of_different_lengths(submission, rng):
    """Sequences of 30, 12, 4 and 2 real tokens padded to 30: every target token weighs the same."""
    logits, tokens = make(rng, 4, 30, 40)
    for b, real in enumerate([30, 12, 4, 2]):
        tokens[b, real:] = -100
    logits[2:] *= 4.0  # the short sequences are hard: a mean of means would overweight them
    check_loss(submission.lm_loss(logits, tokens), logits, tokens)


def test_masked_prompts(submission, rng):
    """Fine-tuning: each sequence's prompt (its first tokens) is ignored, only the answer counts."""
    logits, tokens = make(rng, 3, 16, 30)
    for b, prompt in enumerate([5, 9, 1]):
        tokens[b, :prompt] = -100
    tokens[1, 14:] = -100  # and one answer padded at the end
    check_loss(submission.lm_loss(logits, tokens), logits, tokens)


def test_ignored_anywhere(submission, rng):
    """Ignored targets scattered at random positions, a third of them."""
    logits, tokens = make(rng, 4, 20, 25)
    tokens[torch.from_numpy(rng.random((4, 20)) < 0.33)] = -100
    tokens[:, 1] = 3  # at least one counted target per sequence
    check_loss(submission.lm_loss(logits, tokens), logits, tokens)


@pytest.mark.parametrize(
    "ignore_index", [pytest.param(-1, id="minus-1"), pytest.param(0, id="token-0-ignored")]
)
def test_ignore_index_argument(submission, rng, ignore_index):
    """ignore_index given: the targets equal to it are ignored (0 is a real token id otherwise)."""
    logits, tokens = make(rng, 3, 18, 6)
    tokens = right_pad(rng, tokens, ignore_index)
    got = submission.lm_loss(logits, tokens, ignore_index=ignore_index)
    check_loss(got, logits, tokens, ignore_index)


@pytest.mark.parametrize(
    "batch, length",
    [
        pytest.param(1, 2, id="B1-T2-one-target"),
        pytest.param(2, 3, id="B2-T3"),
        pytest.param(8, 2, id="B8-T2"),
    ],
)
def test_short_sequences(submission, rng, batch, length):
    """The shortest sequences with a target: T = 2 gives one prediction per sequence."""
    logits, tokens = make(rng, batch, length, 11)
    check_loss(submission.lm_loss(logits, tokens), logits, tokens)


@pytest.mark.parametrize("batch", [pytest.param(1, id="B1"), pytest.param(4, id="B4")])
def test_no_target_at_all(submission, rng, batch):
    """T = 1 (no target) and a batch whose targets are all ignored: loss 0 and gradient 0, not NaN."""
    for logits, tokens in [make(rng, batch, 1, 7), make(rng, batch, 5, 7)]:
        if tokens.shape[1] > 1:
            tokens[:, 1:] = -100
        got = submission.lm_loss(logits, tokens)
        expect(isinstance(got, torch.Tensor), "lm_loss must return a torch.Tensor")
        expect(not torch.isnan(got), "the loss is NaN when no target counts", hint=NO_TARGET_NAN)
        assert_close(
            got,
            torch.tensor(0.0),
            what="the loss when no target counts",
            misconceptions=mistakes(logits, tokens),
        )
        assert_gradients_close(
            submission.lm_loss,
            local_loss,
            (logits.clone().requires_grad_(), tokens),
            grad_output=torch.tensor(1.0),
            names=("logits",),
            hint="with no target the loss is 0, and so is its gradient",
        )


@pytest.mark.parametrize(
    "scale",
    [pytest.param(100.0, id="x100"), pytest.param(1000.0, id="x1000"), pytest.param(1e5, id="x100000")],
)
def test_large_logits(submission, rng, scale):
    """Logits in the thousands: the loss stays finite and right."""
    logits, tokens = make(rng, 3, 12, 40, scale=scale)
    tokens = right_pad(rng, tokens)
    got = submission.lm_loss(logits, tokens)
    expect(isinstance(got, torch.Tensor), "lm_loss must return a torch.Tensor")
    expect(bool(torch.isfinite(got)), "the loss is not finite for large logits", hint=UNSTABLE)
    check_loss(got, logits, tokens)


@pytest.mark.parametrize("dtype", dtype_params("float64", "float32", "float16", "bfloat16"))
def test_dtypes(submission, rng, dtype):
    """float64 and float32 stay in their dtype; float16 and bfloat16 are computed in float32."""
    logits, tokens = make(rng, 4, 32, 500, scale=4.0, dtype=dtype)
    tokens = right_pad(rng, tokens)
    got = submission.lm_loss(logits, tokens)
    if dtype in HALF:
        expect(
            isinstance(got, torch.Tensor) and got.dtype == torch.float32,
            "for float16 and bfloat16 logits the loss must be a float32 tensor",
            hint="convert the logits to float32 first: a log-softmax over 500 tokens in half precision loses "
            "most of its digits",
        )
    precision = (
        "float64 logits give a float64 loss with float64's precision: compute it in float64 throughout, "
        "not through float32"
    )
    check_loss(got, logits, tokens, hint=precision if dtype == torch.float64 else "")


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "padded, scale",
    [
        pytest.param(False, 2.0, id="plain"),
        pytest.param(True, 2.0, id="right-padded"),
        pytest.param(True, 300.0, id="large-logits"),
    ],
)
def test_gradients(submission, rng, padded, scale):
    """Backward gives the gradient of F.cross_entropy on the shifted pairs (0 at the last position)."""
    logits, tokens = make(rng, 3, 9, 13, scale=scale)
    if padded:
        tokens = right_pad(rng, tokens)
    check_loss(submission.lm_loss(logits, tokens), logits, tokens)  # the value first
    assert_gradients_close(
        submission.lm_loss,
        local_loss,
        (logits.requires_grad_(), tokens),
        grad_output=torch.tensor(0.75),
        names=("logits",),
        hint=GRADIENT_HINT,
    )


def test_gradient_half(submission, rng):
    """Backward through bfloat16 logits gives bfloat16 gradients, as autograd does through .float()."""
    logits, tokens = make(rng, 2, 8, 16, dtype=torch.bfloat16)
    tokens = right_pad(rng, tokens)
    check_loss(submission.lm_loss(logits, tokens), logits, tokens)  # the value first
    assert_gradients_close(
        submission.lm_loss,
        local_loss,
        (logits.requires_grad_(), tokens),
        grad_output=torch.tensor(1.0),
        names=("logits",),
        rtol=2e-2,
        atol=2e-3,
        hint="convert the logits to float32 with differentiable operations (.float()); autograd hands the "
        "gradient back in bfloat16",
    )


# ---------------------------------------------------------------------------- perplexity


def check_perplexity(got, logits, tokens, ignore_index=-100):
    expect(isinstance(got, torch.Tensor), "perplexity must return a torch.Tensor")
    expect(got.dim() == 0, "perplexity must return a 0-dim tensor")
    dtype = output_dtype(logits)
    expect(got.dtype == dtype, "the perplexity must have the loss's dtype", hint="return exp(lm_loss(...))")
    want, scale = oracle(logits, tokens, ignore_index)
    nll, keep = per_token(logits, tokens, ignore_index)
    seq_means = (nll * keep).sum(1) / keep.sum(1).clamp(min=1)
    loss_tol = ULPS * torch.finfo(dtype).eps * 2.0 ** math.ceil(math.log2(scale))
    assert_close(
        got,
        want.exp().to(dtype),
        what="the perplexity",
        rtol=loss_tol,  # exp turns the loss's absolute error into a relative one
        atol=0.0,
        misconceptions={
            PPL_MEAN_OF_EXP: (nll.exp() * keep).sum().div(keep.sum().clamp(min=1)).to(dtype),
            PPL_OF_MEANS: seq_means.exp().mean().to(dtype),
            "returned the loss? The perplexity is its exponential": want.to(dtype),
            **{label: value.exp() for label, value in mistakes(logits, tokens, ignore_index).items()},
        },
    )


def test_perplexity_random_batches(submission, rng):
    """Perplexity of right-padded random batches: exp of the mean loss over the batch's target tokens."""
    logits, tokens = make(rng, 4, 20, 30, scale=1.5)
    tokens = right_pad(rng, tokens)
    check_perplexity(submission.perplexity(logits, tokens), logits, tokens)


def test_perplexity_uniform_model(submission):
    """A model with equal logits over V = 64 tokens has loss log 64 and perplexity 64."""
    logits = torch.zeros(2, 10, 64)
    tokens = torch.arange(20).reshape(2, 10) % 64
    tokens[1, 6:] = -100
    check_perplexity(submission.perplexity(logits, tokens), logits, tokens)


def test_perplexity_ignore_index_and_nothing_counted(submission, rng):
    """Perplexity passes ignore_index on; with no counted target it is exp(0) = 1."""
    logits, tokens = make(rng, 3, 10, 8)
    tokens = right_pad(rng, tokens, ignore_index=-1)
    check_perplexity(submission.perplexity(logits, tokens, ignore_index=-1), logits, tokens, ignore_index=-1)
    tokens[:, 1:] = -100
    got = submission.perplexity(logits, tokens)
    expect(
        isinstance(got, torch.Tensor) and not torch.isnan(got),
        "the perplexity is NaN when no target counts",
        hint=NO_TARGET_NAN,
    )
    assert_close(got, torch.tensor(1.0), what="the perplexity when no target counts", hint="exp(0) = 1")


# ---------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    "name", [pytest.param("lm_loss", id="lm_loss"), pytest.param("perplexity", id="perplexity")]
)
def test_inputs_unchanged(submission, rng, name):
    """lm_loss and perplexity leave logits and tokens as they were (no ignored target replaced in place)."""
    logits, tokens = make(rng, 3, 10, 12)
    tokens = right_pad(rng, tokens)
    tokens[0, -1] = -100
    # only the inputs here: the values on such inputs are checked in test_random_batches (lm_loss) and
    # test_perplexity_random_batches (perplexity)
    got = call_unchanged(
        getattr(submission, name),
        logits,
        tokens,
        names=("logits", "tokens"),
        what=name,
        hint="build new tensors: torch.where(keep, target, 0) instead of tokens[...] = 0, and no in-place "
        "operation on logits",
    )
    expect(isinstance(got, torch.Tensor), f"{name} must return a torch.Tensor")
