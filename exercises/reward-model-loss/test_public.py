"""Public tests: the worked examples of the lesson, small enough to check by hand.

Run them with `grader test reward-model-loss reward_model_loss.py`.
"""

import math

import torch

from grader.testing import assert_close, expect

SWAPPED = "chosen and rejected swapped? The loss is -logsigmoid(r_chosen - r_rejected - margin)"
SUMMED = "summed over the pairs? The loss is the mean over the pairs"
MARGIN_ADDED = "the margin was added? It is subtracted: -logsigmoid(r_chosen - r_rejected - margin)"
MARGIN_IGNORED = "the margin was ignored? Subtract it inside: -logsigmoid(r_chosen - r_rejected - margin)"
TIES_CORRECT = "ties counted as correct? A pair is correct only when r_chosen > r_rejected, strictly"
LAST_POSITION = "read at position T - 1 whatever the padding? Under right padding that is a padding token"
COUNT_MINUS_ONE = "read at mask.sum() - 1? Under left padding the last real token is not there"

R_CHOSEN = torch.tensor([3.0, 0.5, 1.0])
R_REJECTED = torch.tensor([1.0, 1.5, 1.0])
MARGIN = torch.tensor([1.0, 0.0, 0.5])
VALUES = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 2.0, 3.0, 4.0, 5.0]])


def softplus(x):
    return math.log1p(math.exp(x))  # -logsigmoid(d) = softplus(-d)


def test_worked_example(submission):
    """d = [2, -1, 0]: the loss is the mean of -logsigmoid(d) = [0.12693, 1.31326, 0.69315], 0.71111."""
    losses = [softplus(-2.0), softplus(1.0), softplus(0.0)]
    assert_close(
        submission.pairwise_loss(R_CHOSEN, R_REJECTED),
        torch.tensor(sum(losses) / 3),
        what="pairwise_loss(r_chosen, r_rejected)",
        misconceptions={
            SWAPPED: torch.tensor((softplus(2.0) + softplus(-1.0) + softplus(0.0)) / 3),
            SUMMED: torch.tensor(sum(losses)),
        },
    )


def test_worked_example_with_margin(submission):
    """m = [1, 0, 0.5]: d - m = [1, -1, -0.5], and the loss is 0.86687."""
    assert_close(
        submission.pairwise_loss(R_CHOSEN, R_REJECTED, margin=MARGIN),
        torch.tensor((softplus(-1.0) + softplus(1.0) + softplus(0.5)) / 3),
        what="pairwise_loss(r_chosen, r_rejected, margin)",
        misconceptions={
            MARGIN_ADDED: torch.tensor((softplus(-3.0) + softplus(1.0) + softplus(-0.5)) / 3),
            MARGIN_IGNORED: torch.tensor((softplus(-2.0) + softplus(1.0) + softplus(0.0)) / 3),
            SWAPPED: torch.tensor((softplus(1.0) + softplus(-1.0) + softplus(-0.5)) / 3),
        },
    )


def test_large_gap_is_finite(submission):
    """Differences of -1000 and +1000 in float32: the losses are 1000 and 0, so the mean is 500."""
    got = submission.pairwise_loss(torch.tensor([-500.0, 500.0]), torch.tensor([500.0, -500.0]))
    assert_close(
        got,
        torch.tensor(500.0),
        what="pairwise_loss at differences of -1000 and +1000",
        hint="log(sigmoid(-1000)) is log(0) = -inf in float32: use F.logsigmoid",
    )


def test_accuracy_worked_example(submission):
    """d = [2, -1, 0]: one pair of three is ranked correctly (the tie does not count): 1/3, in float32."""
    got = submission.pairwise_accuracy(R_CHOSEN, R_REJECTED)
    expect(isinstance(got, torch.Tensor), "pairwise_accuracy must return a torch.Tensor")
    assert_close(
        got,
        torch.tensor(1 / 3),
        what="pairwise_accuracy(r_chosen, r_rejected)",
        misconceptions={
            TIES_CORRECT: torch.tensor(2 / 3),
            "counted the pairs? Return the fraction": torch.tensor(1),
        },
    )


def test_last_token_right_padding(submission):
    """Right padding: row 0 has 3 real tokens (its reward is values[0, 2] = 0.3), row 1 has 5."""
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert_close(
        submission.last_token_rewards(VALUES, mask),
        torch.tensor([0.3, 5.0]),
        what="last_token_rewards under right padding",
        misconceptions={LAST_POSITION: torch.tensor([0.5, 5.0])},
    )


def test_last_token_left_padding(submission):
    """Left padding: row 0 has 3 real tokens at positions 2..4 (its reward is values[0, 4] = 0.5)."""
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert_close(
        submission.last_token_rewards(VALUES, mask),
        torch.tensor([0.5, 5.0]),
        what="last_token_rewards under left padding",
        misconceptions={COUNT_MINUS_ONE: torch.tensor([0.3, 5.0])},
    )
