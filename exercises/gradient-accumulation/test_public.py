"""Public tests: small batches you can follow by hand, against the full batch's gradient.

Run them with `grader test gradient-accumulation gradient_accumulation.py`.

Tensors normally cross to your code as copies, so the tests keep the model inside the process
that runs your code (`kept_in_runner`), call `accumulate_gradients` on that very model, and read
its `.grad` back afterwards. The expected gradient is PyTorch's, for the mean cross-entropy over
the real tokens of all micro-batches put together.
"""

import copy

import torch
import torch.nn.functional as F

from grader.testing import assert_close, expect, kept_in_runner

CLASSIC = (
    "divided each micro-batch's mean loss by the number of micro-batches? That is exact only when every "
    "micro-batch has as many real tokens: divide each micro-batch's SUM of token losses by N, the real "
    "tokens of the whole batch"
)
NO_SCALE = "added up the micro-batches' mean losses? Divide each micro-batch's summed token loss by N"
PADDING_COUNTED = "divided by every position, padding included? N counts the real tokens only (mask True)"
PER_SEQUENCE = "divided by the number of sequences? N is the number of real tokens of the whole batch"
MASK_IGNORED = "counted the padding positions' losses? Take the loss only where mask is True"


def linear(d, v, seed):
    gen = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(d, v)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(v, d, generator=gen) * 0.5)
        layer.bias.copy_(torch.randn(v, generator=gen) * 0.1)
    return layer


def micro_batch(mask, d, v, seed):
    """(inputs, targets, mask) for a bool mask of shape (b, T); targets everywhere, padding included."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.tensor(mask)
    b, t = mask.shape
    return torch.randn(b, t, d, generator=gen), torch.randint(0, v, (b, t), generator=gen), mask


def full_batch(layer, micro_batches):
    """The oracle: the mean cross-entropy over the real tokens of all micro-batches, in one batch."""
    model = copy.deepcopy(layer)
    x = torch.cat([inputs[mask] for inputs, _, mask in micro_batches])
    y = torch.cat([targets[mask] for _, targets, mask in micro_batches])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [model.weight.grad, model.bias.grad]


def scaled(layer, micro_batches, scale, *, use_mask=True):
    """Gradients and loss of sum_i scale(i) * S_i, with S_i micro-batch i's summed token loss."""
    model = copy.deepcopy(layer)
    total = torch.zeros(())
    for i, (inputs, targets, mask) in enumerate(micro_batches):
        keep = mask if use_mask else torch.ones_like(mask)
        s = F.cross_entropy(model(inputs)[keep], targets[keep], reduction="sum")
        total = total + s * scale(i)
    total.backward()
    return total.detach(), [model.weight.grad, model.bias.grad]


def mistakes(layer, micro_batches):
    """What the likely mistakes leave in [weight.grad, bias.grad]."""
    counts = [int(m.sum()) for _, _, m in micro_batches]
    k = len(micro_batches)
    positions = sum(m.numel() for _, _, m in micro_batches)
    sequences = sum(m.shape[0] for _, _, m in micro_batches)
    found = {}
    found[CLASSIC] = scaled(layer, micro_batches, lambda i: 1 / (counts[i] * k) if counts[i] else 0.0)[1]
    found[NO_SCALE] = scaled(layer, micro_batches, lambda i: 1 / counts[i] if counts[i] else 0.0)[1]
    found[PADDING_COUNTED] = scaled(layer, micro_batches, lambda i: 1 / positions)[1]
    found[PER_SEQUENCE] = scaled(layer, micro_batches, lambda i: 1 / sequences)[1]
    found[MASK_IGNORED] = scaled(layer, micro_batches, lambda i: 1 / positions, use_mask=False)[1]
    return found


def accumulate_in_runner(submission, layer, micro_batches):
    """Call accumulate_gradients on a copy of `layer` kept in the runner; return the loss it
    returned, [weight.grad, bias.grad] and [weight, bias] read back after the call."""
    fn = submission.accumulate_gradients
    model = kept_in_runner(fn, layer)
    loss = fn(model, micro_batches)
    return (
        loss,
        [model.attr("weight.grad"), model.attr("bias.grad")],
        [model.attr("weight"), model.attr("bias")],
    )


D, V = 3, 4


def test_equal_token_counts(submission):
    """Two micro-batches of 3 real tokens each: the gradient of the mean over all 6 tokens."""
    layer = linear(D, V, 0)
    batches = [
        micro_batch([[True, True], [True, False]], D, V, 1),
        micro_batch([[True, False, False], [True, True, False]], D, V, 2),
    ]
    _, grads, _ = accumulate_in_runner(submission, layer, batches)
    assert_close(
        grads,
        full_batch(layer, batches)[1],
        what="[weight.grad, bias.grad] after accumulating 2 micro-batches of 3 tokens",
        misconceptions=mistakes(layer, batches),
    )


def test_unequal_token_counts(submission):
    """The worked example's shape: 3 real tokens, then 1; every token weighs 1/4, in either micro-batch."""
    layer = linear(D, V, 3)
    batches = [
        micro_batch([[True, True], [True, False]], D, V, 4),
        micro_batch([[True, False, False, False]], D, V, 5),
    ]
    _, grads, _ = accumulate_in_runner(submission, layer, batches)
    assert_close(
        grads,
        full_batch(layer, batches)[1],
        what="[weight.grad, bias.grad] after micro-batches of 3 and 1 real tokens",
        misconceptions=mistakes(layer, batches),
    )


def test_padding_ignored(submission):
    """One micro-batch with padding: padding positions (and their targets) count for nothing."""
    layer = linear(D, V, 6)
    batches = [micro_batch([[True, True, True, False], [True, False, False, False]], D, V, 7)]
    _, grads, _ = accumulate_in_runner(submission, layer, batches)
    assert_close(
        grads,
        full_batch(layer, batches)[1],
        what="[weight.grad, bias.grad] for one padded micro-batch",
        misconceptions=mistakes(layer, batches),
    )


def test_returns_full_batch_loss(submission):
    """The returned loss is the mean cross-entropy over all real tokens of the batch (3 and 1 tokens)."""
    layer = linear(D, V, 8)
    batches = [
        micro_batch([[True, True], [True, False]], D, V, 9),
        micro_batch([[True, False, False, False]], D, V, 10),
    ]
    loss, _, _ = accumulate_in_runner(submission, layer, batches)
    expect(isinstance(loss, torch.Tensor), "accumulate_gradients must return the loss as a torch.Tensor")
    counts = [3, 1]
    assert_close(
        loss,
        full_batch(layer, batches)[0],
        what="the returned loss",
        misconceptions={CLASSIC: scaled(layer, batches, lambda i: 1 / (counts[i] * 2))[0]},
    )


def test_weights_unchanged(submission):
    """The model's weight and bias are left as they were: no optimizer step inside."""
    layer = linear(D, V, 11)
    batches = [micro_batch([[True, True, False]], D, V, 12), micro_batch([[True], [True]], D, V, 13)]
    _, _, params = accumulate_in_runner(submission, layer, batches)
    assert_close(
        params,
        [layer.weight.detach(), layer.bias.detach()],
        what="[weight, bias] after the call",
        hint="only accumulate into .grad: the optimizer step comes after, outside this function",
    )
