"""Hidden tests for reward-model-loss: the pairwise loss against PyTorch's F.logsigmoid (computed in
float64 on the trusted side) on random batches with and without margins and in every dtype, reward
gaps of +-1000, gradients against autograd, the accuracy and its tie rule, the last-token rewards
under right, left and no padding, and inputs left unchanged."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import (
    assert_close,
    assert_gradients_close,
    call_unchanged,
    dtype_params,
    expect,
    local_gradients,
    shrink,
    tolerance,
)

SWAPPED = "chosen and rejected swapped? The loss is -logsigmoid(r_chosen - r_rejected - margin)"
SUMMED = "summed over the pairs? The loss is the mean over the pairs"
MARGIN_ADDED = "the margin was added? It is subtracted: -logsigmoid(r_chosen - r_rejected - margin)"
MARGIN_IGNORED = "the margin was ignored? Subtract it inside: -logsigmoid(r_chosen - r_rejected - margin)"
TIES_CORRECT = "ties counted as correct? A pair is correct only when r_chosen > r_rejected, strictly"
LAST_POSITION = "read at position T - 1 whatever the padding? Under right padding that is a padding token"
COUNT_MINUS_ONE = "read at mask.sum() - 1? Under left padding the last real token is not there"
FIRST_REAL = "read at the first real token? The reward is read at the last one"
UNSTABLE = (
    "the output is inf or NaN where the exact loss is finite: log(sigmoid(d)) is log(0) = -inf once "
    "sigmoid(d) underflows (and exp(-d) overflows). Use F.logsigmoid(d), or F.softplus(-d) for -logsigmoid(d)"
)
GRADIENT_HINT = (
    "the loss is right but a gradient is not: the gradient of r_chosen is -sigmoid(-(d - margin)) / B, "
    "that of r_rejected its negative (with d = r_chosen - r_rejected; 1/2 of that size at d - margin = 0). "
    "Use differentiable tensor operations and F.logsigmoid (a hand-written min(d, 0) - log1p(exp(-|d|)) "
    "has the wrong slope at 0)"
)
UNCHANGED_HINT = (
    "compute new tensors (d = r_chosen - r_rejected, torch.where(...)); `d = r_chosen; d -= ...`, "
    "masked_fill_ and other in-place operations overwrite the caller's tensors"
)


def randn(rng, *shape, scale=1.0, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape) * scale).to(dtype)


# ---------------------------------------------------------------------------- the oracle and its mistakes


def oracle_loss(r_chosen, r_rejected, margin=None):
    """PyTorch's -F.logsigmoid(r_chosen - r_rejected - margin).mean(): the exact loss when called in float64,
    and the function whose autograd the gradients are compared with."""
    d = r_chosen - r_rejected
    if margin is not None:
        d = d - margin
    return -F.logsigmoid(d).mean()


def variant(rc, rr, m=None, *, sign=-1.0, swap=False, reduce="mean"):
    """The loss in float64 with knobs for the likely mistakes, cast to the rewards' dtype."""
    rcd, rrd = rc.double(), rr.double()
    d = rrd - rcd if swap else rcd - rrd
    if m is not None:
        d = d + sign * m.double()
    losses = -F.logsigmoid(d)
    return (losses.sum() if reduce == "sum" else losses.mean()).to(rc.dtype)


def exact(rc, rr, m=None):
    """The right loss, from F.logsigmoid in float64, rounded once to the rewards' dtype."""
    return oracle_loss(rc.double(), rr.double(), None if m is None else m.double()).to(rc.dtype)


def loss_mistakes(rc, rr, m=None):
    found = {SWAPPED: variant(rc, rr, m, swap=True), SUMMED: variant(rc, rr, m, reduce="sum")}
    if m is not None:
        found[MARGIN_ADDED] = variant(rc, rr, m, sign=1.0)
        found[MARGIN_IGNORED] = variant(rc, rr, None)
    return found


def pairs(rng, batch, dtype=torch.float32, with_margin=False):
    """Rewards of a batch of pairs (spread like a reward model's outputs), and margins in {0, 1/3, 2/3, 1}
    as Llama 2's small margins are (one per rating), or None."""
    rc = randn(rng, batch, scale=2.0, dtype=dtype)
    rr = randn(rng, batch, scale=2.0, dtype=dtype)
    m = torch.from_numpy(rng.integers(0, 4, size=batch) / 3.0).to(dtype) if with_margin else None
    return rc, rr, m


# ---------------------------------------------------------------------------- the loss


@pytest.mark.parametrize(
    "with_margin", [pytest.param(False, id="no-margin"), pytest.param(True, id="with-margin")]
)
def test_loss_random_batches(submission, seed, with_margin):
    """pairwise_loss on random batches, against -F.logsigmoid(r_chosen - r_rejected - margin).mean()."""

    def check(sizes, case_seed):
        rc, rr, m = pairs(np.random.default_rng(case_seed), sizes["batch"], with_margin=with_margin)
        got = submission.pairwise_loss(rc, rr, margin=m)
        assert_close(got, exact(rc, rr, m), what="pairwise_loss", misconceptions=loss_mistakes(rc, rr, m))

    shrink(check, {"batch": 16}, seed=seed, minimum={"batch": 2})


def test_margin_none_is_zero_margin(submission, rng):
    """margin=None (the default) is the loss without margin; a margin of zeros gives the same loss."""
    rc, rr, _ = pairs(rng, 10)
    want = exact(rc, rr)
    assert_close(submission.pairwise_loss(rc, rr), want, what="pairwise_loss(r_chosen, r_rejected)")
    assert_close(
        submission.pairwise_loss(rc, rr, margin=torch.zeros(10)),
        want,
        what="pairwise_loss with a margin of zeros",
        misconceptions=loss_mistakes(rc, rr),
    )


def test_batch_of_one(submission, rng):
    """A single pair: the loss is that pair's -logsigmoid(r_chosen - r_rejected - margin)."""
    rc, rr, m = pairs(rng, 1, with_margin=True)
    m = m + 0.5  # never zero, so that a margin left out shows
    assert_close(
        submission.pairwise_loss(rc, rr, margin=m),
        exact(rc, rr, m),
        what="pairwise_loss for one pair",
        misconceptions=loss_mistakes(rc, rr, m),
    )


@pytest.mark.parametrize("dtype", dtype_params("float64", "float32", "float16", "bfloat16"))
def test_loss_dtypes(submission, rng, dtype):
    """The loss has the rewards' dtype and is right to that dtype's precision."""
    rc, rr, m = pairs(rng, 24, dtype=dtype, with_margin=True)
    got = submission.pairwise_loss(rc, rr, margin=m)
    expect(isinstance(got, torch.Tensor), "pairwise_loss must return a torch.Tensor")
    expect(
        got.dtype == dtype and got.dim() == 0,
        f"pairwise_loss must return a 0-dim tensor of the rewards' dtype ({dtype})",
        detail=f"got a tensor of dtype {got.dtype} and shape {tuple(got.shape)}",
        hint="return the mean as it is (no .item(), no .float()); cast back to the rewards' dtype if you "
        "computed in float32 inside",
    )
    assert_close(
        got,
        exact(rc, rr, m),
        what="pairwise_loss",
        **tolerance(dtype),
        misconceptions=loss_mistakes(rc, rr, m),
    )


# ---------------------------------------------------------------------------- large gaps


def large_gaps(dtype):
    """Six pairs whose differences are -1000, 1000, 100, -100, 0 and -5, with a margin on the last two."""
    rc = torch.tensor([-500.0, 500.0, 60.0, -60.0, 2.0, 45.0], dtype=dtype)
    rr = torch.tensor([500.0, -500.0, -40.0, 40.0, 2.0, 50.0], dtype=dtype)
    m = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 2.0], dtype=dtype)
    return rc, rr, m


def finite(x):
    return isinstance(x, torch.Tensor) and x.is_floating_point() and bool(torch.isfinite(x).all())


@pytest.mark.parametrize("dtype", dtype_params("float32", "float16", "bfloat16"))
def test_large_gaps(submission, dtype):
    """Reward differences of +-1000 and +-100: the loss is finite and exact (-logsigmoid(-1000) = 1000)."""
    rc, rr, m = large_gaps(dtype)
    got = submission.pairwise_loss(rc, rr, margin=m)
    expect(finite(got), "pairwise_loss is not finite at reward differences of +-1000", hint=UNSTABLE)
    assert_close(
        got,
        exact(rc, rr, m),
        what="pairwise_loss at large differences",
        **tolerance(dtype),
        misconceptions=loss_mistakes(rc, rr, m),
    )


@pytest.mark.parametrize("dtype", dtype_params("float32", "float16", "bfloat16"))
def test_large_gap_gradients(submission, dtype):
    """At differences of +-1000 the gradients of both rewards are finite and equal autograd's."""
    rc, rr, m = large_gaps(dtype)
    found = submission.pairwise_loss.backward(
        rc.clone().requires_grad_(),
        rr.clone().requires_grad_(),
        margin=m,
        grad_output=torch.tensor(1.0, dtype=dtype),
    )
    grads = found.inputs
    expect(
        len(grads) == 2 and all(finite(g) for g in grads),
        "the gradients of the rewards are not finite at reward differences of +-1000",
        hint=UNSTABLE,
    )
    rcd, rrd = rc.double().requires_grad_(), rr.double().requires_grad_()
    oracle_loss(rcd, rrd, m.double()).backward()
    for name, got, want in zip(("r_chosen", "r_rejected"), grads, (rcd.grad, rrd.grad), strict=True):
        assert_close(
            got, want.to(dtype), what=f"the gradient of {name}", **tolerance(dtype), hint=GRADIENT_HINT
        )


# ---------------------------------------------------------------------------- gradients


def hand_written(r_chosen, r_rejected, margin=None):
    """-logsigmoid written out as -(min(d, 0) - log1p(exp(-|d|))): right values, but autograd takes one
    side of the kinks of min and abs, so its slope at d = 0 is 1 where sigmoid(0) = 1/2."""
    d = r_chosen - r_rejected
    if margin is not None:
        d = d - margin
    return -(torch.clamp(d, max=0) - torch.log1p(torch.exp(-d.abs()))).mean()


HAND_WRITTEN = (
    "the gradient at the pairs with d - margin = 0 is twice autograd's through F.logsigmoid, as "
    "autograd's one-sided slopes of min(d, 0) - log1p(exp(-|d|)) give: use F.logsigmoid (or F.softplus)"
)


def check_gradients(submission, args, kwargs, grad_output):
    """Backward through the submission in the sandbox and through -F.logsigmoid(...).mean() locally;
    compare the loss, then the gradients of r_chosen and r_rejected (naming the kink mistake)."""
    found = submission.pairwise_loss.backward(*args, grad_output=grad_output, **kwargs)
    want, grads, _ = local_gradients(oracle_loss, args, kwargs, grad_output)
    _, kinked, _ = local_gradients(hand_written, args, kwargs, grad_output)
    assert_close(found.output, want, what="pairwise_loss", hint=GRADIENT_HINT)
    assert_close(len(found.inputs), 2, what="the number of input gradients")
    for i, name in enumerate(("r_chosen", "r_rejected")):
        assert_close(
            found.inputs[i],
            grads[i],
            what=f"the gradient of {name}",
            hint=GRADIENT_HINT,
            misconceptions={HAND_WRITTEN: kinked[i]},
        )


@pytest.mark.parametrize("dtype", dtype_params("float32", "float64"))
def test_gradients(submission, rng, dtype):
    """Backward from the loss: the gradients of r_chosen and r_rejected, against autograd through
    F.logsigmoid, on a batch with ties (d - margin = 0 exactly) among ordinary pairs."""
    rc, rr, m = pairs(rng, 12, dtype=dtype, with_margin=True)
    rr[:3] = rc[:3]  # ties without margin ...
    m[:3] = 0.0
    m[3:6] = rc[3:6] - rr[3:6]  # ... and differences equal to their margin
    assert_close(
        submission.pairwise_loss(rc, rr, margin=m),
        exact(rc, rr, m),
        what="pairwise_loss",
        misconceptions=loss_mistakes(rc, rr, m),
    )
    args = (rc.clone().requires_grad_(), rr.clone().requires_grad_())
    check_gradients(submission, args, {"margin": m}, torch.tensor(2.0, dtype=dtype))


def test_gradients_without_margin(submission, rng):
    """Backward with margin=None, every difference 0 (a freshly initialised head): -1/(2B) and +1/(2B)."""
    rc = randn(rng, 8)
    check_gradients(
        submission, (rc.clone().requires_grad_(), rc.clone().requires_grad_()), {}, torch.tensor(1.0)
    )


# ---------------------------------------------------------------------------- accuracy


def tied_pairs(rng, batch, dtype=torch.float32):
    """Integer rewards in [-3, 3]: many ties, as a head that has not learned much gives."""
    rc = torch.from_numpy(rng.integers(-3, 4, size=batch).astype(np.float64)).to(dtype)
    rr = torch.from_numpy(rng.integers(-3, 4, size=batch).astype(np.float64)).to(dtype)
    return rc, rr


def accuracy_mistakes(rc, rr):
    n = rc.shape[0]
    return {
        TIES_CORRECT: torch.tensor(float((rc >= rr).sum()) / n),
        "the comparison is the wrong way round? Correct means r_chosen > r_rejected": torch.tensor(
            float((rc < rr).sum()) / n
        ),
        "counted the correct pairs? Return their fraction (the mean)": (rc > rr).sum(),
        "ties left out of the count? Here a tie counts as a pair ranked wrongly, and stays in": torch.tensor(
            float((rc > rr).sum()) / max(int((rc != rr).sum()), 1)
        ),
    }


def test_accuracy_with_ties(submission, seed):
    """pairwise_accuracy on batches with many ties: the fraction of pairs with r_chosen > r_rejected."""

    def check(sizes, case_seed):
        rc, rr = tied_pairs(np.random.default_rng(case_seed), sizes["batch"])
        assert_close(
            submission.pairwise_accuracy(rc, rr),
            torch.tensor(float((rc > rr).sum()) / sizes["batch"]),
            what="pairwise_accuracy",
            misconceptions=accuracy_mistakes(rc, rr),
        )

    shrink(check, {"batch": 40}, seed=seed)


def test_accuracy_all_ties(submission, rng):
    """Every reward equal (a constant head): no pair is ranked correctly, the accuracy is 0."""
    r = torch.full((7,), 0.25)
    assert_close(
        submission.pairwise_accuracy(r, r.clone()),
        torch.tensor(0.0),
        what="pairwise_accuracy when every pair is a tie",
        misconceptions={TIES_CORRECT: torch.tensor(1.0)},
    )


@pytest.mark.parametrize("dtype", dtype_params("float64", "float16", "bfloat16"))
def test_accuracy_dtype(submission, rng, dtype):
    """The accuracy is a 0-dim float32 tensor whatever the rewards' dtype."""
    rc, rr = tied_pairs(rng, 30, dtype=dtype)
    want = torch.tensor(float((rc > rr).sum()) / 30)
    assert_close(
        submission.pairwise_accuracy(rc, rr),
        want,
        what="pairwise_accuracy",
        misconceptions={
            "returned in the rewards' dtype? The accuracy is float32 whatever the rewards' dtype": want.to(
                dtype
            ),
            **accuracy_mistakes(rc, rr),
        },
    )


# ---------------------------------------------------------------------------- last-token rewards


def padded_mask(rng, batch, length, padding, dtype=torch.int64):
    """A (batch, length) attention mask of 0/1 with random lengths (at least 1 real token per row),
    padded on the right, on the left, or not at all; one row is always full."""
    lengths = rng.integers(1, length + 1, size=batch)
    if padding == "none":
        lengths[:] = length
    lengths[0] = length
    if batch > 1 and padding != "none":
        lengths[1] = max(1, length // 2)  # never full, so that the padding shows
    positions = np.arange(length)
    if padding == "left":
        mask = positions[None, :] >= (length - lengths)[:, None]
    else:
        mask = positions[None, :] < lengths[:, None]
    return torch.from_numpy(mask).to(dtype)


def gather_at(values, index):
    return values.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def oracle_last(values, mask):
    """values[b, t] at the largest t with mask[b, t] == 1, by a Python loop over the rows."""
    index = torch.tensor([int(torch.nonzero(row).max()) for row in mask.to(torch.bool)])
    return gather_at(values, index)


def last_mistakes(values, mask):
    real = mask.to(torch.bool)
    n = values.shape[0]
    return {
        LAST_POSITION: values[:, -1],
        COUNT_MINUS_ONE: gather_at(values, real.sum(-1) - 1),
        FIRST_REAL: gather_at(values, real.to(torch.int64).argmax(-1)),
        "read at the last padding token? The reward is read at the last token whose mask is 1": gather_at(
            values, torch.tensor([int(torch.nonzero(~row).max()) if (~row).any() else 0 for row in real])
        )
        if n
        else values[:, 0],
    }


PADDINGS = [pytest.param(p, id=f"{p}-padding") for p in ("right", "left", "none")]
MASK_DTYPES = [pytest.param(torch.int64, id="int64-mask"), pytest.param(torch.bool, id="bool-mask")]


@pytest.mark.parametrize("mask_dtype", MASK_DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_last_token_rewards(submission, seed, padding, mask_dtype):
    """last_token_rewards on random lengths: each row's value at its last position with mask 1."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        values = randn(rng, sizes["batch"], sizes["length"])
        mask = padded_mask(rng, sizes["batch"], sizes["length"], padding, mask_dtype)
        assert_close(
            submission.last_token_rewards(values, mask),
            oracle_last(values, mask),
            what=f"last_token_rewards under {padding} padding",
            rtol=0.0,
            atol=0.0,
            misconceptions=last_mistakes(values, mask),
        )

    shrink(check, {"batch": 6, "length": 9}, seed=seed, minimum={"batch": 1, "length": 2})


@pytest.mark.parametrize("dtype", dtype_params("float64", "float16", "bfloat16"))
def test_last_token_dtypes(submission, rng, dtype):
    """The rewards have the values' dtype and are the selected values exactly (nothing rounded)."""
    values = randn(rng, 5, 8, scale=3.0, dtype=dtype)
    mask = padded_mask(rng, 5, 8, "right")
    assert_close(
        submission.last_token_rewards(values, mask),
        oracle_last(values, mask),
        what="last_token_rewards",
        rtol=0.0,
        atol=0.0,
        misconceptions=last_mistakes(values, mask),
    )


def test_a_batch_of_one(submission, rng):
    """A batch of one sequence, left padded: the reward is a one-element tensor (often a view of
    `values`, which must come back like any other result)."""
    values = randn(rng, 1, 7)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1]])
    assert_close(
        submission.last_token_rewards(values, mask),
        values[:, 6],
        what="last_token_rewards of a batch of one",
        rtol=0.0,
        atol=0.0,
        misconceptions=last_mistakes(values, mask),
    )


def test_one_real_token(submission, rng):
    """Rows with a single real token, first (right padding) and last (left padding) in the row."""
    values = randn(rng, 2, 6)
    mask = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]])
    assert_close(
        submission.last_token_rewards(values, mask),
        values[[0, 1], [0, 5]],
        what="last_token_rewards with one real token per row",
        rtol=0.0,
        atol=0.0,
        misconceptions=last_mistakes(values, mask),
    )


@pytest.mark.parametrize("padding", [pytest.param(p, id=f"{p}-padding") for p in ("right", "left")])
def test_last_token_gradients(submission, rng, padding):
    """Backward through last_token_rewards: the upstream gradient lands on each row's last real token."""
    values = randn(rng, 5, 7)
    mask = padded_mask(rng, 5, 7, padding)
    assert_close(
        submission.last_token_rewards(values, mask),
        oracle_last(values, mask),
        what=f"last_token_rewards under {padding} padding",
        rtol=0.0,
        atol=0.0,
        misconceptions=last_mistakes(values, mask),
    )
    assert_gradients_close(
        submission.last_token_rewards,
        oracle_last,
        (values.requires_grad_(), mask),
        grad_output=randn(rng, 5),
        names=("values",),
        hint="select with differentiable indexing (gather, or values[rows, index]): no .item(), .detach() "
        "or Python numbers in between",
    )


# ---------------------------------------------------------------------------- inputs left unchanged


def test_inputs_unchanged(submission, rng):
    """pairwise_loss, pairwise_accuracy and last_token_rewards leave the tensors given to them unchanged."""
    # Only the inputs are checked here: the values of the same calls are checked by
    # test_loss_random_batches, test_accuracy_with_ties and test_last_token_rewards.
    rc, rr, m = pairs(rng, 9, with_margin=True)
    call_unchanged(
        submission.pairwise_loss,
        rc,
        rr,
        names=("r_chosen", "r_rejected"),
        what="pairwise_loss",
        hint=UNCHANGED_HINT,
        margin=m,
    )
    call_unchanged(
        submission.pairwise_accuracy,
        rc,
        rr,
        names=("r_chosen", "r_rejected"),
        what="pairwise_accuracy",
        hint=UNCHANGED_HINT,
    )
    values = randn(rng, 4, 6)
    for padding in ("right", "left"):
        mask = padded_mask(rng, 4, 6, padding)
        call_unchanged(
            submission.last_token_rewards,
            values,
            mask,
            names=("values", "attention_mask"),
            what="last_token_rewards",
            hint=UNCHANGED_HINT,
        )
