"""Public tests: small cases you can check by hand.

Run them with `grader test grpo-advantage grpo.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

# The worked example of the README: two prompts, four completions each, 0/1 rewards.
REWARDS = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
S3 = math.sqrt(3)


def test_worked_example(submission):
    """Group 0 = [1, 0, 0, 0] (mean 0.25, std 0.5), group 1 = [1, 1, 0, 1] (mean 0.75, std 0.5)."""
    expected = torch.tensor([1.5, -0.5, -0.5, -0.5, 0.5, 0.5, -1.5, 0.5])
    assert_close(
        submission.grpo_advantages(REWARDS, 4),
        expected,
        atol=1e-5,
        misconceptions={
            "biased std (divided by n, not n - 1)?": torch.tensor(
                [S3, -1 / S3, -1 / S3, -1 / S3, 1 / S3, 1 / S3, -S3, 1 / S3]
            ),
            # rewards.view(4, 2) makes the groups [1, 0, 1, 0] and [0, 0, 1, 1]
            "groups taken interleaved (r[g::G]) instead of contiguous? rewards[0:4] is group 0": torch.tensor(
                [1.0, -1.0, -1.0, -1.0, 1.0, 1.0, -1.0, 1.0]
            )
            * (S3 / 2),
            "normalised over the whole batch instead of per group?": (REWARDS - 0.5) / math.sqrt(2 / 7),
        },
    )


def test_without_std(submission):
    """normalize_by_std=False only subtracts each group's mean."""
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, -0.75, 0.25])
    assert_close(
        submission.grpo_advantages(REWARDS, 4, normalize_by_std=False),
        expected,
        misconceptions={
            "divided by the std though normalize_by_std=False?": torch.tensor(
                [1.5, -0.5, -0.5, -0.5, 0.5, 0.5, -1.5, 0.5]
            ),
            # here the whole batch and the interleaved groups [1, 0, 1, 0], [0, 0, 1, 1] all have mean 0.5
            "subtracted the mean of the whole batch, or of interleaved groups r[g::G]? "
            "rewards[0:4] is group 0, rewards[4:8] group 1": REWARDS - 0.5,
        },
    )


def test_all_equal_group_gives_zeros(submission):
    """A group whose rewards are all equal has std 0: its advantages are 0 (thanks to eps), not NaN."""
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    got = submission.grpo_advantages(rewards, 3)
    expect(
        isinstance(got, torch.Tensor) and not torch.isnan(got).any(),
        "the advantages contain NaN",
        hint="add eps to the std (outside the square root): 0 / (0 + eps) = 0",
    )
    g = 1 / math.sqrt(3)  # group 2 = [1, 0, 1]: mean 2/3, std 1/sqrt(3)
    expected = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, g, -2 * g, g])
    assert_close(got, expected, atol=1e-5)


def test_group_size_one_gives_zeros(submission):
    """One completion per prompt: nobody to compare with, so every advantage is 0 (not NaN)."""
    got = submission.grpo_advantages(torch.tensor([0.5, 2.0, -1.0]), 1)
    assert_close(
        got,
        torch.zeros(3),
        hint="the unbiased std of a single value is NaN (n - 1 = 0): group_size = 1 must give zeros",
    )


def test_bool_rewards_give_float32(submission):
    """Pass / fail rewards as a bool tensor: the advantages are float32."""
    rewards = torch.tensor([True, False, False, True])
    r = 1 / math.sqrt(2)  # each group [1, 0] or [0, 1]: mean 0.5, std 1/sqrt(2)
    assert_close(
        submission.grpo_advantages(rewards, 2),
        torch.tensor([r, -r, -r, r]),
        atol=1e-5,
        misconceptions={
            "converted with .to(float)? Python's float is torch.float64: use .float()": torch.tensor(
                [r, -r, -r, r], dtype=torch.float64
            )
        },
    )


@pytest.mark.hint("check the sizes yourself and raise ValueError: view and reshape raise RuntimeError")
@pytest.mark.parametrize(
    "length, group_size",
    [pytest.param(7, 4, id="7-rewards-groups-of-4"), pytest.param(6, 0, id="group-size-0")],
)
def test_invalid_sizes_raise_value_error(submission, length, group_size):
    """A length that is not a multiple of group_size, or group_size < 1, raises ValueError."""
    with pytest.raises(ValueError):
        submission.grpo_advantages(torch.zeros(length), group_size)
