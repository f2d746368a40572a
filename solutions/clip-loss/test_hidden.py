"""Hidden tests for clip-loss: random batches against PyTorch's own functions (shrunk to the smallest
failing case), embeddings of very different norms, a zero embedding, duplicated pairs, one pair,
scales below, at and beyond the clamp, dtypes, gradients of both embeddings and of log_scale against
autograd, inputs left unchanged, and the in-place clamp of the parameter.

The oracle is PyTorch on the trusted side: `F.normalize(x, dim=-1)` for both embeddings, the scale
`torch.clamp(log_scale.exp(), max=100)`, and `F.cross_entropy` against `torch.arange(N)` in both
directions (see `oracle`), the computation of open_clip's `ClipLoss` with the paper's clamp. The
mistakes are computed by a float64 formula with switches (see `formula`)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import (
    GradingFailure,
    RemoteError,
    assert_close,
    assert_gradients_close,
    call_unchanged,
    dtype_params,
    expect,
    kept_in_runner,
    local_gradients,
    shrink,
)

# one wording per mistake, the same as in the public tests
NOT_NORMALISED = (
    "the loss matches the embeddings used without L2 normalisation: normalise each row first, "
    "F.normalize(x, dim=-1)"
)
IMAGE_ONLY = (
    "the loss matches the image-to-text cross-entropy alone (one direction, or the same one twice): "
    "average it with the cross-entropy of logits_per_image.T"
)
TEXT_ONLY = (
    "the loss matches the text-to-image cross-entropy alone: average it with the cross-entropy of "
    "logits_per_image"
)
SUMMED = "the loss matches the sum of the two cross-entropies: average them, (image + text) / 2"
NO_EXP = "the loss matches log_scale used as the scale itself: the scale is exp(log_scale)"
DIVIDED = "the loss matches the cosines divided by the scale: multiply them by it"
NO_CLAMP = "the loss matches a scale that was not clamped: use min(exp(log_scale), 100)"
FIXED_SCALE = "the loss matches the initial scale 1 / 0.07 whatever log_scale: use exp(log_scale)"
ZERO_NAN = (
    "the loss is NaN for a batch holding an all-zero embedding: divide each row by max(||row||, eps), "
    "as F.normalize(x, dim=-1) does, never by the norm alone"
)
GRADIENT_HINT = (
    "the gradients are autograd's through F.normalize, min(exp(log_scale), 100) and the two cross-entropies: "
    "build the loss from differentiable tensor operations on the tensors given"
)
LN100 = math.log(100.0)
INIT = math.log(1 / 0.07)


# ---------------------------------------------------------------------------- inputs


def embeddings(rng, n, d, dtype=torch.float32, spread=0.0):
    """(image_emb, text_emb): matching pairs correlated (text = image + noise), row norms scaled by
    10 ** uniform(-spread, spread)."""
    images = rng.standard_normal((n, d))
    texts = images + 1.2 * rng.standard_normal((n, d))
    images *= 10.0 ** rng.uniform(-spread, spread, size=(n, 1))
    texts *= 10.0 ** rng.uniform(-spread, spread, size=(n, 1))
    return torch.from_numpy(images).to(dtype), torch.from_numpy(texts).to(dtype)


def scalar(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


# ---------------------------------------------------------------------------- the oracle and the mistakes


def oracle(image_emb, text_emb, log_scale):
    """PyTorch's answer, in float32 (float64 for float64 embeddings)."""
    compute = torch.float64 if image_emb.dtype == torch.float64 else torch.float32
    images = F.normalize(image_emb.to(compute), dim=-1)
    texts = F.normalize(text_emb.to(compute), dim=-1)
    scale = torch.clamp(log_scale.to(compute).exp(), max=100.0)
    logits_per_image = scale * images @ texts.T
    labels = torch.arange(images.shape[0])
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2


def formula(image_emb, text_emb, log_scale, *, normalise=True, terms="both", scale_as="exp"):
    """The loss in float64 written out (log_softmax and the diagonal), with switches for the mistakes;
    returned in the oracle's dtype."""
    images, texts = image_emb.detach().double(), text_emb.detach().double()
    if normalise:
        images = images / images.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        texts = texts / texts.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    s = float(log_scale)
    scale = {
        "exp": min(math.exp(s), 100.0),
        "raw": s,
        "noclamp": math.exp(s),
        "fixed": 1 / 0.07,
        "divide": 0.0,
    }[scale_as]
    cosines = images @ texts.T
    logits = cosines / min(math.exp(s), 100.0) if scale_as == "divide" else cosines * scale
    image_to_text = -torch.log_softmax(logits, dim=1).diagonal().mean()
    text_to_image = -torch.log_softmax(logits, dim=0).diagonal().mean()
    out = {
        "both": (image_to_text + text_to_image) / 2,
        "image": image_to_text,
        "text": text_to_image,
        "sum": image_to_text + text_to_image,
    }[terms]
    return out if image_emb.dtype == torch.float64 else out.float()


def mistakes(image_emb, text_emb, log_scale):
    """What each likely mistake returns on this batch: a submission that matches one is told which."""
    args = (image_emb, text_emb, log_scale)
    return {
        NOT_NORMALISED: formula(*args, normalise=False),
        IMAGE_ONLY: formula(*args, terms="image"),
        TEXT_ONLY: formula(*args, terms="text"),
        SUMMED: formula(*args, terms="sum"),
        NO_EXP: formula(*args, scale_as="raw"),
        DIVIDED: formula(*args, scale_as="divide"),
        NO_CLAMP: formula(*args, scale_as="noclamp"),
        FIXED_SCALE: formula(*args, scale_as="fixed"),
    }


def tol(dtype):
    """Honest float32 formulations (F.normalize or x / norm, log_softmax and the diagonal, the
    transpose or a second matmul) agree within about 1e-6 relative here; float64 within 1e-14."""
    return {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}


def check(got, image_emb, text_emb, log_scale, *, what="the loss", hint=""):
    expected = oracle(image_emb, text_emb, log_scale).detach()
    assert_close(
        got,
        expected,
        what=what,
        hint=hint,
        misconceptions=mistakes(image_emb, text_emb, log_scale),
        **tol(expected.dtype),
    )


# ---------------------------------------------------------------------------- against PyTorch


def test_random_batches(submission, seed):
    """Random batches of correlated pairs, with random log-scales between 0 and ln 100, against PyTorch."""

    def case(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        images, texts = embeddings(rng, sizes["pairs"], sizes["dim"], spread=1.0)
        log_scale = scalar(rng.uniform(0.5, LN100 - 0.1))
        check(submission.clip_loss(images, texts, log_scale), images, texts, log_scale)

    shrink(case, {"pairs": 16, "dim": 12}, seed=seed, minimum={"pairs": 2, "dim": 2})


def test_very_different_norms(submission, rng):
    """Rows whose norms range from 1e-3 to 1e3: only the directions count, not the lengths."""
    images, texts = embeddings(rng, 10, 8, spread=3.0)
    log_scale = scalar(INIT)
    check(submission.clip_loss(images, texts, log_scale), images, texts, log_scale)


def test_zero_embedding(submission, rng):
    """An all-zero image embedding and an all-zero text embedding stay zero (their logits are 0): no NaN."""
    images, texts = embeddings(rng, 6, 5)
    images[2] = 0.0
    texts[4] = 0.0
    log_scale = scalar(INIT)
    got = submission.clip_loss(images, texts, log_scale)
    nan = isinstance(got, torch.Tensor) and bool(torch.isnan(got).any())
    check(got, images, texts, log_scale, hint=ZERO_NAN if nan else "")


def test_duplicate_pairs(submission, rng):
    """The same image twice and the same caption twice in a batch: the labels stay the diagonal."""
    images, texts = embeddings(rng, 7, 6)
    images[3] = images[1]
    texts[5] = texts[0] * 2.0  # the same direction: an identical caption
    log_scale = scalar(3.0)
    check(submission.clip_loss(images, texts, log_scale), images, texts, log_scale)


@pytest.mark.parametrize("log_scale", [pytest.param(0.0, id="scale-1"), pytest.param(6.0, id="clamped")])
def test_one_pair(submission, rng, log_scale):
    """A batch of one pair gives a loss of 0, whatever the embeddings and the scale."""
    images, texts = embeddings(rng, 1, 9, spread=2.0)
    got = submission.clip_loss(images, texts, scalar(log_scale))
    assert_close(got, scalar(0.0), atol=1e-6, what="the loss of a batch of one pair")


@pytest.mark.parametrize(
    "log_scale",
    [
        pytest.param(0.0, id="scale-1"),
        pytest.param(INIT, id="initial-scale"),
        pytest.param(LN100 - 0.05, id="just-below-100"),
        pytest.param(5.0, id="clamped-exp-5"),
        pytest.param(8.0, id="clamped-exp-8"),
    ],
)
def test_scale(submission, rng, log_scale):
    """The logits are multiplied by min(exp(log_scale), 100): below the clamp, at the start, beyond it."""
    images, texts = embeddings(rng, 8, 6)
    ls = scalar(log_scale)
    check(submission.clip_loss(images, texts, ls), images, texts, ls)


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
def test_half_precision(submission, rng, dtype):
    """float16 and bfloat16 embeddings and log_scale: the loss is computed in and returned as float32."""
    images, texts = embeddings(rng, 12, 16, dtype=dtype, spread=1.0)
    log_scale = scalar(INIT, dtype)
    got = submission.clip_loss(images, texts, log_scale)
    expect(isinstance(got, torch.Tensor), "clip_loss must return a torch.Tensor")
    expect(
        got.dtype == torch.float32,
        f"the loss of {str(dtype).removeprefix('torch.')} embeddings must be float32",
        detail=f"got {str(got.dtype).removeprefix('torch.')}",
        hint="convert float16 and bfloat16 embeddings to float32 before computing the loss",
    )
    check(got, images, texts, log_scale)


def test_float64(submission, rng):
    """float64 embeddings give a float64 loss, with float64's precision."""
    images, texts = embeddings(rng, 6, 7, dtype=torch.float64, spread=1.0)
    log_scale = scalar(INIT, torch.float64)
    got = submission.clip_loss(images, texts, log_scale)
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float64,
        "float64 embeddings must give a float64 loss",
        hint="only float16 and bfloat16 embeddings are converted to float32",
    )
    check(got, images, texts, log_scale)


# ---------------------------------------------------------------------------- gradients

GRAD_TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.mark.parametrize(
    "log_scale", [pytest.param(INIT, id="initial-scale"), pytest.param(4.0, id="scale-54.6")]
)
def test_gradients(submission, rng, log_scale):
    """The gradients of image_emb, text_emb and log_scale against autograd through PyTorch's formula."""
    images, texts = embeddings(rng, 9, 7, spread=1.0)
    check(submission.clip_loss(images, texts, scalar(log_scale)), images, texts, scalar(log_scale))
    assert_gradients_close(
        submission.clip_loss,
        oracle,
        (images.requires_grad_(), texts.requires_grad_(), scalar(log_scale).requires_grad_()),
        grad_output=torch.tensor(1.0),
        names=("image_emb", "text_emb", "log_scale"),
        hint=GRADIENT_HINT,
        **GRAD_TOL,
    )


def test_clamped_scale_gets_no_gradient(submission, rng):
    """log_scale = 5 (exp(5) = 148 > 100): the embeddings' gradients are at scale 100, log_scale's is 0."""
    images, texts = embeddings(rng, 8, 6)
    log_scale = scalar(5.0)
    check(submission.clip_loss(images, texts, log_scale), images, texts, log_scale)
    args = (images.requires_grad_(), texts.requires_grad_(), log_scale.requires_grad_())
    found = submission.clip_loss.backward(*args, grad_output=torch.tensor(1.0))
    _, want, _ = local_gradients(oracle, args, {}, torch.tensor(1.0))
    expect(len(found.inputs) == 3, "the loss must be differentiable with respect to the embeddings")
    for name, got, expected in zip(("image_emb", "text_emb"), found.inputs, want, strict=False):
        assert_close(got, expected, what=f"the gradient of {name}", hint=GRADIENT_HINT, **GRAD_TOL)
    grad = found.inputs[2]
    zero = grad is None or (isinstance(grad, torch.Tensor) and grad.numel() == 1 and float(grad) == 0.0)
    expect(
        zero,
        "log_scale received a nonzero gradient while exp(log_scale) is beyond the clamp at 100",
        hint="clamp the scale with torch.clamp(log_scale.exp(), max=100): beyond 100 it is constant, "
        "and so is the loss in log_scale",
    )


# ---------------------------------------------------------------------------- inputs left unchanged


def test_inputs_unchanged(submission, rng):
    """clip_loss leaves the embeddings and log_scale it was given as they were."""
    images, texts = embeddings(rng, 5, 6, spread=1.0)
    log_scale = scalar(INIT)
    got = call_unchanged(
        submission.clip_loss,
        images,
        texts,
        log_scale,
        names=("image_emb", "text_emb", "log_scale"),
        what="clip_loss",
        hint="normalise into new tensors (F.normalize(x, dim=-1), or x / x.norm(...)), never x /= ...",
    )
    check(got, images, texts, log_scale)


# ---------------------------------------------------------------------------- the clamp of the parameter

NOT_IN_PLACE = (
    "the parameter given is unchanged, while the clamped value was returned: clamp it in place "
    "(log_scale.clamp_(...)), since the optimizer holds that very tensor"
)
SCALE_BOUNDS = (
    "the parameter matches its value clamped to [0, 100]: the bounds are those of the log-scale, "
    "[0, ln 100], so that the scale exp(log_scale) stays in [1, 100]"
)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(-0.5, id="negative"),
        pytest.param(INIT, id="initial"),
        pytest.param(4.6, id="just-below-ln100"),
        pytest.param(5.0, id="above"),
        pytest.param(12.0, id="far-above"),
    ],
)
def test_clamp_logit_scale(submission, value):
    """On a leaf that requires grad: clamped in place to [0, ln 100], and still requiring grad."""
    param = kept_in_runner(submission.clamp_logit_scale_, torch.tensor(value, requires_grad=True))
    try:
        returned = submission.clamp_logit_scale_(param)
    except RemoteError:
        raise GradingFailure(
            "clamp_logit_scale_ raised on a parameter that requires grad",
            hint="PyTorch refuses in-place changes of a leaf that requires grad while autograd records: "
            "clamp inside `with torch.no_grad():`",
        ) from None
    expected = torch.tensor(min(max(value, 0.0), LN100))
    after = param.read_back()
    hint = ""
    if isinstance(after, torch.Tensor) and isinstance(returned, torch.Tensor):
        unchanged = float(after) == float(torch.tensor(value))
        if unchanged and abs(float(returned) - float(expected)) < 1e-6:
            hint = NOT_IN_PLACE
        elif (
            value > LN100 and abs(float(after) - min(value, 100.0)) < 1e-6 and float(returned) == float(after)
        ):
            hint = SCALE_BOUNDS
    assert_close(
        after.detach() if isinstance(after, torch.Tensor) else after,
        expected,
        what="the parameter after clamp_logit_scale_",
        hint=hint,
    )
    expect(
        param.attr("requires_grad") is True,
        "the parameter no longer requires grad after clamp_logit_scale_",
        hint="change its value under torch.no_grad(); never replace or detach it",
    )
    assert_close(
        returned.detach() if isinstance(returned, torch.Tensor) else returned,
        expected,
        what="what clamp_logit_scale_ returned",
        hint="return the parameter itself, after clamping it",
    )
