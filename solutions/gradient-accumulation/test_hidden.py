"""Hidden tests for gradient-accumulation: the accumulated gradient against the full batch's
gradient computed by PyTorch's autograd (cross_entropy's mean over the real tokens of all
micro-batches put together: the oracle), on random micro-batches of different sizes, lengths and
padding, an all-padding micro-batch, stale gradients, different splits of one batch, the returned
loss, inputs and weights left alone, and the largest tensor created.

The model is kept in the runner (`kept_in_runner`): the submission accumulates into that very
layer, and its .grad is read back after the call.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import Call, assert_close, expect, kept_in_runner, shrink, tolerance

CLASSIC = (
    "divided each micro-batch's mean loss by the number of micro-batches? That is exact only when every "
    "micro-batch has as many real tokens: divide each micro-batch's SUM of token losses by N, the real "
    "tokens of the whole batch"
)
NO_SCALE = "added up the micro-batches' mean losses? Divide each micro-batch's summed token loss by N"
PADDING_COUNTED = "divided by every position, padding included? N counts the real tokens only (mask True)"
PER_SEQUENCE = "divided by the number of sequences? N is the number of real tokens of the whole batch"
MASK_IGNORED = "counted the padding positions' losses? Take the loss only where mask is True"
STALE = (
    "the gradients held before the call were added to: discard them first (model.zero_grad()), since "
    "backward adds into .grad"
)
NAN_HINT = (
    "a micro-batch with no real token has a mean loss of 0 / 0 = NaN: sum its token losses (0 for none) "
    "and divide the sum by N, the real tokens of the whole batch"
)
TOL = tolerance(torch.float32)


# ---------------------------------------------------------------------------- helpers


def linear(rng, d, v):
    layer = torch.nn.Linear(d, v)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(rng.standard_normal((v, d)).astype(np.float32) * 0.5))
        layer.bias.copy_(torch.from_numpy(rng.standard_normal(v).astype(np.float32) * 0.1))
    return layer


def micro_batch(rng, b, t, d, v, *, empty=False):
    """(inputs, targets, mask): each sequence's real tokens are a random span [start, end) of its
    positions (prompt tokens masked out before it, padding after it), maybe empty; targets hold
    class ids everywhere, padding included."""
    inputs = torch.from_numpy(rng.standard_normal((b, t, d)).astype(np.float32))
    targets = torch.from_numpy(rng.integers(0, v, size=(b, t))).long()
    start = rng.integers(0, t, size=(b, 1))
    end = rng.integers(start, t + 1)
    pos = np.arange(t)[None, :]
    mask = torch.from_numpy((pos >= start) & (pos < end))
    if empty:
        mask = torch.zeros(b, t, dtype=torch.bool)
    return inputs, targets, mask


def full_batch(layer, micro_batches):
    """The oracle: the mean cross-entropy over the real tokens of all micro-batches, in one batch."""
    model = copy.deepcopy(layer)
    x = torch.cat([inputs[mask] for inputs, _, mask in micro_batches])
    y = torch.cat([targets[mask] for _, targets, mask in micro_batches])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [model.weight.grad, model.bias.grad]


def scaled(layer, micro_batches, scale, *, use_mask=True):
    """Loss and gradients of sum_i scale(i) * S_i, with S_i micro-batch i's summed token loss."""
    model = copy.deepcopy(layer)
    total = torch.zeros(())
    for i, (inputs, targets, mask) in enumerate(micro_batches):
        keep = mask if use_mask else torch.ones_like(mask)
        s = F.cross_entropy(model(inputs)[keep], targets[keep], reduction="sum")
        total = total + s * scale(i)
    total.backward()
    return total.detach(), [model.weight.grad, model.bias.grad]


def mistakes(layer, micro_batches):
    """What the likely mistakes give: ({mistake: [weight.grad, bias.grad]}, {mistake: loss})."""
    counts = [int(m.sum()) for _, _, m in micro_batches]
    k = len(micro_batches)
    positions = sum(m.numel() for _, _, m in micro_batches)
    sequences = sum(m.shape[0] for _, _, m in micro_batches)
    found = {}
    # a micro-batch without real tokens has a NaN mean loss but adds nothing to the gradients
    found[CLASSIC] = scaled(layer, micro_batches, lambda i: 1 / (counts[i] * k) if counts[i] else 0.0)
    found[NO_SCALE] = scaled(layer, micro_batches, lambda i: 1 / counts[i] if counts[i] else 0.0)
    found[PADDING_COUNTED] = scaled(layer, micro_batches, lambda i: 1 / positions)
    found[PER_SEQUENCE] = scaled(layer, micro_batches, lambda i: 1 / sequences)
    found[MASK_IGNORED] = scaled(layer, micro_batches, lambda i: 1 / positions, use_mask=False)
    return {key: g for key, (_, g) in found.items()}, {key: loss for key, (loss, _) in found.items()}


def accumulate_in_runner(submission, layer, micro_batches, *, stale=None):
    """Call accumulate_gradients on a copy of `layer` kept in the runner (with .grad set to `stale`
    first, when given); return the loss it returned, [weight.grad, bias.grad] and [weight, bias]
    read back after the call."""
    fn = submission.accumulate_gradients
    model = kept_in_runner(fn, layer)
    if stale is not None:
        setattr(model, "weight.grad", stale[0])
        setattr(model, "bias.grad", stale[1])
    loss = fn(model, micro_batches)
    grads = [model.attr("weight.grad"), model.attr("bias.grad")]
    return loss, grads, [model.attr("weight"), model.attr("bias")]


def no_nan(grads):
    return all(not (isinstance(g, torch.Tensor) and bool(torch.isnan(g).any())) for g in grads)


def check(submission, layer, micro_batches, what, *, stale=None):
    """The gradients, the returned loss and the weights, against the full batch's."""
    loss, grads, params = accumulate_in_runner(submission, layer, micro_batches, stale=stale)
    want_loss, want_grads = full_batch(layer, micro_batches)
    on_grads, on_loss = mistakes(layer, micro_batches)
    if stale is not None:
        on_grads = {STALE: [w + s for w, s in zip(want_grads, stale, strict=True)], **on_grads}
    expect(no_nan(grads), f"the gradients have NaN values ({what})", hint=NAN_HINT)
    expect(no_nan([loss]), f"the returned loss is NaN ({what})", hint=NAN_HINT)
    assert_close(grads, want_grads, what=f"[weight.grad, bias.grad] ({what})", misconceptions=on_grads, **TOL)
    assert_close(loss, want_loss, what=f"the returned loss ({what})", misconceptions=on_loss, **TOL)
    assert_close(
        params,
        [layer.weight.detach(), layer.bias.detach()],
        what="[weight, bias] after the call",
        hint="only accumulate into .grad: the optimizer step comes after, outside this function",
    )


# ---------------------------------------------------------------------------- random batches


def test_random_micro_batches(submission, seed):
    """Random micro-batches of different numbers of sequences, lengths and real tokens."""

    def run(sizes, seed):
        rng = np.random.default_rng(seed)
        d, v = sizes["dim"], sizes["vocab"]
        layer = linear(rng, d, v)
        batches = []
        while not batches or not any(bool(m.any()) for _, _, m in batches):
            batches = [
                micro_batch(
                    rng,
                    int(rng.integers(1, sizes["seqs"] + 1)),
                    int(rng.integers(1, sizes["length"] + 1)),
                    d,
                    v,
                )
                for _ in range(sizes["micro"])
            ]
        check(submission, layer, batches, f"{sizes['micro']} random micro-batches")

    shrink(
        check=run,
        sizes={"micro": 4, "seqs": 3, "length": 8, "dim": 6, "vocab": 9},
        seed=seed,
        minimum={"micro": 2, "seqs": 1, "length": 2, "dim": 1, "vocab": 2},
    )


@pytest.mark.parametrize(
    "position", [pytest.param(0, id="first"), pytest.param(1, id="middle"), pytest.param(2, id="last")]
)
def test_micro_batch_of_padding_only(submission, rng, position):
    """One micro-batch holds nothing but padding: it adds nothing to the gradient (and no NaN)."""
    layer = linear(rng, 5, 7)
    batches = [micro_batch(rng, 2, 6, 5, 7, empty=i == position) for i in range(3)]
    while not any(bool(m.any()) for _, _, m in batches):
        batches = [micro_batch(rng, 2, 6, 5, 7, empty=i == position) for i in range(3)]
    check(submission, layer, batches, "with a micro-batch of padding only")


def test_stale_gradients(submission, rng):
    """The model arrives with gradients from an earlier step in .grad: they are discarded, not added to."""
    layer = linear(rng, 4, 6)
    batches = [micro_batch(rng, 3, 5, 4, 6), micro_batch(rng, 1, 9, 4, 6)]
    stale = [torch.full((6, 4), 0.75), torch.full((6,), -0.5)]
    check(submission, layer, batches, "stale gradients before the call", stale=stale)


@pytest.mark.parametrize(
    "parts", [pytest.param(1, id="1-micro-batch"), pytest.param(2, id="2"), pytest.param(4, id="4")]
)
def test_same_batch_any_split(submission, rng, parts):
    """One batch of 8 sequences, split into 1, 2 or 4 micro-batches: the gradient is the same."""
    layer = linear(rng, 6, 10)
    inputs, targets, _ = micro_batch(rng, 8, 12, 6, 10)
    lengths = torch.tensor([12, 1, 3, 12, 7, 2, 10, 5])  # right padding, very different counts
    mask = torch.arange(12)[None, :] < lengths[:, None]
    size = 8 // parts
    batches = [(inputs[i : i + size], targets[i : i + size], mask[i : i + size]) for i in range(0, 8, size)]
    check(submission, layer, batches, f"8 sequences in {parts} micro-batches")


def test_different_lengths_and_widths(submission, rng):
    """Micro-batches padded to their own length (dynamic padding): 1 x 20, 5 x 3, 2 x 11 positions."""
    layer = linear(rng, 8, 5)
    batches = [micro_batch(rng, 1, 20, 8, 5), micro_batch(rng, 5, 3, 8, 5), micro_batch(rng, 2, 11, 8, 5)]
    check(submission, layer, batches, "micro-batches of different shapes")


def test_inputs_unchanged(submission, rng):
    """The micro-batches (inputs, targets, masks) are left as they were."""
    layer = linear(rng, 4, 6)
    batches = [micro_batch(rng, 2, 5, 4, 6), micro_batch(rng, 3, 4, 4, 6)]
    fn = submission.accumulate_gradients
    model = kept_in_runner(fn, layer)
    kept = kept_in_runner(fn, batches)
    fn(model, kept)
    assert_close(
        kept.read_back(),
        batches,
        what="the micro-batches after the call",
        hint="select the real tokens into new tensors (logits[mask]); never write into inputs, targets "
        "or mask (masked_fill_, index assignment)",
    )


# ---------------------------------------------------------------------------- memory

# 8 micro-batches of 4 sequences x 32 positions, d = 32, V = 256: the reference's largest tensor is
# one micro-batch's logits or their gradient (4 x 32 x 256 floats, 128 KiB); with 75-100% of the
# positions real tokens, a forward over the micro-batches' real tokens concatenated makes logits
# of about 900 KiB (7x).
MICRO, SEQS, LENGTH, DIM, VOCAB = 8, 4, 32, 32, 256


@pytest.mark.performance
def test_one_micro_batch_at_a_time(perf):
    """The largest tensor created by accumulating 8 micro-batches, against the reference's."""

    def make(rng):
        layer = linear(rng, DIM, VOCAB)
        batches = []
        for _ in range(MICRO):
            inputs, targets, _ = micro_batch(rng, SEQS, LENGTH, DIM, VOCAB)
            lengths = torch.from_numpy(rng.integers(LENGTH * 3 // 4, LENGTH + 1, size=(SEQS, 1)))
            batches.append((inputs, targets, torch.arange(LENGTH)[None, :] < lengths))  # right padding
        return Call("accumulate_gradients", layer, batches)

    perf.measure(
        "memory",
        make,
        check=lambda actual, expected: assert_close(actual, expected, what="the returned loss", **TOL),
        hint="a tensor as large as all micro-batches' logits was created: run one forward and one "
        "backward per micro-batch, never one forward over the micro-batches concatenated",
    )
