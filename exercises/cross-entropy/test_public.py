"""Public tests: small cases you can check by hand.

Run them with `grader test cross-entropy loss.py`.
"""

import math

import torch

from grader.testing import assert_close, assert_gradients_close, expect

WORKED = math.log(math.exp(2) + math.exp(1) + 1)  # logsumexp([2, 1, 0]) = 2.4076


def test_worked_example(submission):
    """Logits [2, 1, 0]: the loss of target 0 is logsumexp - 2 = 0.4076, of target 2 it is 2.4076."""
    logits = torch.tensor([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    got = submission.cross_entropy(logits, torch.tensor([0, 2]))
    expect(isinstance(got, torch.Tensor), "cross_entropy must return a torch.Tensor")
    expect(got.dim() == 0, f"the loss must be a 0-dim tensor (the mean), got shape {tuple(got.shape)}")
    assert_close(
        got,
        torch.tensor((WORKED - 2 + WORKED - 0) / 2),
        what="the loss of targets [0, 2]",
        misconceptions={
            "summed instead of averaged? The loss is the mean over positions": torch.tensor(2 * WORKED - 2),
            "averaged over the vocabulary too? Divide by the 2 positions, not by 2 x 3 entries": torch.tensor(
                (2 * WORKED - 2) / 6
            ),
            "a positive log-probability? The loss is -log p = logsumexp(x) - x[t]": torch.tensor(
                -(2 * WORKED - 2) / 2
            ),
        },
    )


def test_uniform_logits_give_log_v(submission):
    """When every logit of a row is equal, each token has probability 1/V and the loss is log V."""
    logits = torch.zeros(2, 3, 50)
    targets = torch.tensor([[0, 7, 49], [3, 3, 3]])
    assert_close(submission.cross_entropy(logits, targets), torch.tensor(math.log(50)), what="the loss")


def test_large_logits_stay_finite(submission):
    """The worked example scaled by 1000: the loss of target 2 is 2000, not inf or NaN."""
    logits = torch.tensor([[2000.0, 1000.0, 0.0]])
    got = submission.cross_entropy(logits, torch.tensor([2]))
    expect(
        not torch.isnan(got),
        "the loss is NaN: exp(2000) overflowed to inf and inf / inf = NaN",
        hint="no max subtracted? logsumexp(x) = m + log(sum(exp(x - m))) with m = max(x)",
    )
    expect(
        not torch.isinf(got),
        "the loss is inf: p_2 came out as exactly 0 and -log(0) = inf",
        hint="log of softmax underflows: use log-sum-exp, log p = x[t] - logsumexp(x) with the max "
        "subtracted inside, never log(softmax)",
    )
    assert_close(got, torch.tensor(2000.0), what="the loss")


def test_ignored_positions(submission):
    """Targets [0, 1, -100]: the third position counts neither in the sum nor in the denominator."""
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    got = submission.cross_entropy(logits, torch.tensor([0, 1, -100]))
    kept = (WORKED - 2) + math.log(3)
    assert_close(
        got,
        torch.tensor(kept / 2),
        what="the loss",
        misconceptions={"ignored positions counted in the mean? Divide by 2, not 3": torch.tensor(kept / 3)},
    )


def test_custom_ignore_index(submission):
    """ignore_index=0 ignores the positions whose target is 0."""
    logits = torch.tensor([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    got = submission.cross_entropy(logits, torch.tensor([0, 2]), ignore_index=0)
    assert_close(
        got,
        torch.tensor(WORKED),
        what="the loss with ignore_index=0",
        misconceptions={
            "ignored positions counted in the mean? Only one position counts": torch.tensor(WORKED / 2),
            "ignore_index not used? Pass it on instead of comparing with -100": torch.tensor(WORKED - 1),
        },
    )


def test_every_position_ignored(submission):
    """With nothing to average, the loss is 0, not 0 / 0 = NaN."""
    got = submission.cross_entropy(torch.randn(2, 4, 10), torch.full((2, 4), -100))
    expect(
        not torch.isnan(got), "the loss is NaN when every position is ignored", hint="divide by max(count, 1)"
    )
    assert_close(got, torch.tensor(0.0), what="the loss")


def test_bfloat16_gives_float32(submission):
    """bfloat16 logits are computed in float32, and the loss is a float32 tensor."""
    logits = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.bfloat16)
    got = submission.cross_entropy(logits, torch.tensor([0]))
    expect(got.dtype == torch.float32, f"the loss has dtype {got.dtype}; expected torch.float32")
    assert_close(got, torch.tensor(WORKED - 2), what="the loss")


def test_gradient(submission):
    """d loss / d logits = (softmax - onehot) / (number of kept positions); 0 for an ignored position."""
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]], requires_grad=True)
    targets = torch.tensor([0, 1, -100])
    p = torch.softmax(logits.detach()[:2], dim=-1)
    onehot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = torch.cat([(p - onehot) / 2, torch.zeros(1, 3)])
    found = submission.cross_entropy.backward(logits, targets, grad_output=torch.tensor(1.0))
    assert_close(
        found.inputs[0],
        expected,
        what="the gradient of the logits",
        misconceptions={
            "ignored positions counted in the mean? The gradient is divided by 2 kept positions, not 3": (
                expected * 2 / 3
            ),
            "no gradient through the log-sum-exp? Only -onehot / 2 is left": torch.cat(
                [-onehot / 2, torch.zeros(1, 3)]
            ),
        },
    )

    def by_formula(x, t):
        return (x[:2].logsumexp(-1) - x[:2].gather(-1, t[:2, None]).squeeze(-1)).mean()

    assert_gradients_close(
        submission.cross_entropy,
        by_formula,
        (logits, targets),
        grad_output=torch.tensor(2.0),
        names=("logits",),
    )
