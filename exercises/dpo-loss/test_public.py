"""Public tests: small cases you can check by hand.

Run them with `grader test dpo-loss dpo.py`.
"""

import math

import torch

from grader.testing import assert_close, expect

T, F = True, False
MASK_IGNORED = "summed over padding/prompt tokens too? sum only where the mask is True"
MEAN = "averaged over tokens instead of summed? log p(response) is the sum of its tokens' log-probs"

# The worked example of the README: one pair, a two-token prompt, beta = 0.1.
POLICY_CHOSEN = torch.tensor([[-9.0, -7.0, -3.0, -5.0, -4.0, -2.0]])
REF_CHOSEN = torch.tensor([[-8.0, -6.0, -4.0, -6.0, -4.0, -1.0]])
CHOSEN_MASK = torch.tensor([[F, F, T, T, T, F]])
POLICY_REJECTED = torch.tensor([[-9.0, -7.0, -2.0, -6.0, -3.0, -4.0]])
REF_REJECTED = torch.tensor([[-8.0, -6.0, -3.0, -4.0, -3.0, -3.0]])
REJECTED_MASK = torch.tensor([[F, F, T, T, T, T]])
EXAMPLE = (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, CHOSEN_MASK, REJECTED_MASK)


def softplus(x):
    return math.log1p(math.exp(x))  # -logsigmoid(m) = softplus(-m)


def test_sequence_logps_by_hand(submission):
    """Row 0 sums positions 2..4 (-3 - 5 - 4 = -12); row 1 sums positions 1..5."""
    logps = torch.tensor([[-9.0, -7.0, -3.0, -5.0, -4.0, -2.0], [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]])
    mask = torch.tensor([[F, F, T, T, T, F], [F, T, T, T, T, T]])
    assert_close(
        submission.sequence_logps(logps, mask),
        torch.tensor([-12.0, -20.0]),
        what="sequence_logps",
        misconceptions={
            MASK_IGNORED: torch.tensor([-30.0, -21.0]),
            MEAN: torch.tensor([-4.0, -4.0]),
            "mask convention inverted? True marks the response tokens": torch.tensor([-18.0, -1.0]),
        },
    )


def test_worked_example(submission):
    """chosen_reward = 0.1 * (-12 + 14) = 0.2, rejected_reward = 0.1 * (-15 + 13) = -0.2,
    loss = -logsigmoid(0.4) = softplus(-0.4)."""
    got = submission.dpo_loss(*EXAMPLE)
    expect(
        isinstance(got, tuple) and len(got) == 3,
        "dpo_loss must return a tuple (loss, chosen_rewards, rejected_rewards)",
    )
    loss, chosen, rejected = got
    assert_close(
        loss,
        torch.tensor(softplus(-0.4)),
        what="the loss",
        misconceptions={
            MASK_IGNORED: torch.tensor(softplus(-0.3)),
            MEAN: torch.tensor(softplus(-0.1 * (2 / 3 + 0.5))),
            "beta applied outside the sigmoid? the loss is -logsigmoid(beta * margin)": torch.tensor(
                0.1 * softplus(-4.0)
            ),
            "chosen and rejected swapped? the margin is chosen_reward - rejected_reward": torch.tensor(
                softplus(0.4)
            ),
        },
    )
    # summed over every position: -0.1 and -0.4; averaged over the response: 0.1 * 2/3 and 0.1 * -1/2
    assert_close(
        chosen,
        torch.tensor([0.2]),
        what="chosen_rewards",
        misconceptions={MASK_IGNORED: torch.tensor([-0.1]), MEAN: torch.tensor([0.2 / 3])},
    )
    assert_close(
        rejected,
        torch.tensor([-0.2]),
        what="rejected_rewards",
        misconceptions={MASK_IGNORED: torch.tensor([-0.4]), MEAN: torch.tensor([-0.05])},
    )


def test_loss_is_the_batch_mean(submission):
    """Two pairs: the worked example and the same pair with chosen and rejected exchanged."""
    loss, chosen, rejected = submission.dpo_loss(
        torch.cat([POLICY_CHOSEN, POLICY_REJECTED]),
        torch.cat([POLICY_REJECTED, POLICY_CHOSEN]),
        torch.cat([REF_CHOSEN, REF_REJECTED]),
        torch.cat([REF_REJECTED, REF_CHOSEN]),
        torch.cat([CHOSEN_MASK, REJECTED_MASK]),
        torch.cat([REJECTED_MASK, CHOSEN_MASK]),
    )
    assert_close(
        loss,
        torch.tensor((softplus(-0.4) + softplus(0.4)) / 2),
        what="the loss",
        misconceptions={
            "summed over the batch instead of averaged?": torch.tensor(softplus(-0.4) + softplus(0.4))
        },
    )
    assert_close(chosen, torch.tensor([0.2, -0.2]), what="chosen_rewards")
    assert_close(rejected, torch.tensor([-0.2, 0.2]), what="rejected_rewards")


def test_policy_equal_to_reference(submission):
    """Policy = reference: both rewards are 0 and the loss is log 2."""
    loss, chosen, rejected = submission.dpo_loss(
        POLICY_CHOSEN, POLICY_REJECTED, POLICY_CHOSEN, POLICY_REJECTED, CHOSEN_MASK, REJECTED_MASK
    )
    assert_close(loss, torch.tensor(math.log(2.0)), what="the loss", hint="-logsigmoid(0) = log 2")
    assert_close(chosen, torch.zeros(1), what="chosen_rewards")
    assert_close(rejected, torch.zeros(1), what="rejected_rewards")


def test_very_negative_margin_is_finite(submission):
    """A margin of -1e4 (float32): the loss is 1e4, not inf."""
    mask = torch.tensor([[T, T]])
    policy_chosen = torch.tensor([[-5000.0, -5000.0]])  # log-ratio -1e4 with a reference at 0
    zeros = torch.zeros(1, 2)
    loss, _, _ = submission.dpo_loss(policy_chosen, zeros, zeros, zeros, mask, mask, beta=1.0)
    assert_close(
        loss,
        torch.tensor(1e4),
        what="the loss",
        hint="log(sigmoid(-1e4)) is log(0) = -inf in float32: use F.logsigmoid",
    )
