"""Public tests: the worked example of the README and other small cases you can check by hand.

Run them with `grader test ppo-objective ppo.py`.
"""

import math

import torch

from grader.testing import assert_close, expect

T, F = True, False
MIN = (
    "the loss matches min(pg_losses, pg_losses2): the loss is the negated objective, so the "
    "pessimistic term is the max"
)
INVERTED = (
    "the result matches the ratio exp(old_logprobs - logprobs): the ratio is exp(logprobs - old_logprobs)"
)
CLAMP_PRODUCT = (
    "the loss matches clamping advantages * ratio: clamp the ratio alone, then multiply by -advantages"
)
PADDED_MEAN = (
    "the result matches dividing by all B * T positions: divide by the number of True entries of the mask"
)
MASK_IGNORED = "the result matches a mean over every position, padding included: only masked-in tokens count"
DEVIATION_CLIPFRAC = (
    "the clip fraction matches counting |ratio - 1| > cliprange: count the tokens where "
    "pg_losses2 > pg_losses"
)
VALUE_UNCLIPPED = "the value loss matches 0.5 * masked mean of (vpreds - returns)^2, without the clipped term"
VALUE_AROUND_RETURNS = (
    "the value loss matches clipping vpreds to returns +- cliprange_value: clip around old_values, and keep "
    "the max of both squared errors"
)
NO_HALF = "the value loss is twice the expected one: the 0.5 factor is missing"
HALF_DTYPE = "the results have the inputs' half dtype: float16 and bfloat16 inputs give float32 results"

# The worked example of the README: two responses of two tokens, padded to T = 3 (column 2).
MASK = torch.tensor([[T, T, F], [T, T, F]])
OLD_LOGPROBS = torch.tensor([[-0.7, -1.1, 1.0], [-2.0, -0.3, 1.0]])
LOG_RATIO = torch.tensor([[0.0, math.log(1.5), 5.0], [math.log(1.5), math.log(0.5), -3.0]])
LOGPROBS = OLD_LOGPROBS + LOG_RATIO
ADVANTAGES = torch.tensor([[1.0, 1.0, 9.0], [-1.0, -2.0, 9.0]])
OLD_VALUES = torch.tensor([[0.5, 0.0, 0.0], [0.0, 1.0, 0.0]])
VPREDS = torch.tensor([[0.6, 0.5, 7.0], [0.5, 0.0, 7.0]])
RETURNS = torch.tensor([[1.0, 1.0, -4.0], [0.0, -1.0, -4.0]])


def scalar(x):
    return torch.tensor(x, dtype=torch.float32)


def check_policy(got):
    """(pg_loss, pg_clipfrac) of the worked example."""
    expect(
        isinstance(got, tuple) and len(got) == 2,
        "policy_loss must return a tuple (pg_loss, pg_clipfrac)",
    )
    pg_loss, pg_clipfrac = got
    assert_close(
        pg_loss,
        scalar(0.225),
        what="pg_loss",
        misconceptions={
            MIN: scalar(-0.075),
            INVERTED: scalar(0.78333333),
            CLAMP_PRODUCT: scalar(0.075),
            PADDED_MEAN: scalar(0.15),
        },
    )
    assert_close(
        pg_clipfrac,
        scalar(0.5),
        what="pg_clipfrac",
        misconceptions={DEVIATION_CLIPFRAC: scalar(0.75)},
        hint="count a token when its clipped term is strictly larger: tokens b and d of the example",
    )


def check_value(got):
    """(vf_loss, vf_clipfrac) of the worked example."""
    expect(
        isinstance(got, tuple) and len(got) == 2,
        "value_loss must return a tuple (vf_loss, vf_clipfrac)",
    )
    vf_loss, vf_clipfrac = got
    assert_close(
        vf_loss,
        scalar(0.53625),
        what="vf_loss",
        misconceptions={
            VALUE_UNCLIPPED: scalar(0.2075),
            VALUE_AROUND_RETURNS: scalar(0.02),
            NO_HALF: scalar(1.0725),
            PADDED_MEAN: scalar(0.3575),
        },
    )
    assert_close(vf_clipfrac, scalar(0.5), what="vf_clipfrac")


def test_masked_mean_by_hand(submission):
    """[[1, 2, (100)], [3, 4, (50)]], the last column masked out: (1 + 2 + 3 + 4) / 4 = 2.5."""
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 50.0]])
    assert_close(
        submission.masked_mean(values, MASK),
        scalar(2.5),
        what="masked_mean",
        misconceptions={PADDED_MEAN: scalar(10 / 6), MASK_IGNORED: scalar(160 / 6)},
    )


def test_policy_loss_worked_example(submission):
    """Ratios 1, 1.5, 1.5, 0.5 and advantages 1, 1, -1, -2: pg_loss = 0.225, pg_clipfrac = 0.5."""
    check_policy(submission.policy_loss(LOGPROBS, OLD_LOGPROBS, ADVANTAGES, MASK))


def test_value_loss_worked_example(submission):
    """vpredclipped = 0.6, 0.2, 0.2, 0.8: vf_loss = 0.5 * (0.16 + 0.64 + 0.25 + 3.24) / 4, vf_clipfrac 0.5."""
    check_value(submission.value_loss(VPREDS, OLD_VALUES, RETURNS, MASK))


def test_ppo_loss_worked_example(submission):
    """loss = pg_loss + 0.1 * vf_loss = 0.225 + 0.053625, returned with its four parts."""
    got = submission.ppo_loss(LOGPROBS, OLD_LOGPROBS, ADVANTAGES, VPREDS, OLD_VALUES, RETURNS, MASK)
    expect(
        isinstance(got, tuple) and len(got) == 5,
        "ppo_loss must return a tuple (loss, pg_loss, vf_loss, pg_clipfrac, vf_clipfrac)",
    )
    loss, pg_loss, vf_loss, pg_clipfrac, vf_clipfrac = got
    check_policy((pg_loss, pg_clipfrac))
    check_value((vf_loss, vf_clipfrac))
    assert_close(loss, scalar(0.278625), what="the loss", hint="loss = pg_loss + vf_coef * vf_loss")
    loss = submission.ppo_loss(
        LOGPROBS, OLD_LOGPROBS, ADVANTAGES, VPREDS, OLD_VALUES, RETURNS, MASK, vf_coef=1.0
    )[0]
    assert_close(loss, scalar(0.225 + 0.53625), what="the loss with vf_coef = 1")


def test_worked_example_gradients(submission):
    """Only tokens whose plain term is chosen get a gradient: -A * ratio / 4, and (vpreds - returns) / 4."""
    found = submission.policy_loss.backward(
        LOGPROBS.clone().requires_grad_(), OLD_LOGPROBS, ADVANTAGES, MASK, grad_output=scalar(1.0)
    )
    check_policy(found.output)
    expect(len(found.inputs) == 1, "exactly one gradient was expected: that of logprobs")
    assert_close(
        found.inputs[0],
        torch.tensor([[-0.25, 0.0, 0.0], [0.375, 0.0, 0.0]]),
        what="the gradient of pg_loss with respect to logprobs",
    )
    found = submission.value_loss.backward(
        VPREDS.clone().requires_grad_(), OLD_VALUES, RETURNS, MASK, grad_output=scalar(1.0)
    )
    check_value(found.output)
    expect(len(found.inputs) == 1, "exactly one gradient was expected: that of vpreds")
    assert_close(
        found.inputs[0],
        torch.tensor([[-0.1, 0.0, 0.0], [0.125, 0.0, 0.0]]),
        what="the gradient of vf_loss with respect to vpreds",
    )


def test_first_step_ratio_one(submission):
    """logprobs == old_logprobs (the first step): every ratio is 1, pg_loss = -masked_mean(A), no clipping."""
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-3.0, -0.1, -1.5, 0.0]])
    advantages = torch.tensor([[0.5, -1.0, 2.0, 3.0], [1.5, 0.0, -0.5, 3.0]])
    mask = torch.tensor([[T, T, T, F], [T, T, T, F]])
    found = submission.policy_loss.backward(
        logprobs.clone().requires_grad_(), logprobs, advantages, mask, grad_output=scalar(1.0)
    )
    pg_loss, pg_clipfrac = found.output
    assert_close(pg_loss, scalar(-2.5 / 6), what="pg_loss", misconceptions={PADDED_MEAN: scalar(-2.5 / 8)})
    assert_close(pg_clipfrac, scalar(0.0), what="pg_clipfrac")
    assert_close(
        found.inputs[0],
        torch.where(mask, -advantages / 6, 0.0),
        what="the gradient of pg_loss with respect to logprobs",
        hint="at ratio 1 the gradient of each response token is -A / (number of response tokens)",
        misconceptions={INVERTED: torch.where(mask, advantages / 6, 0.0)},
    )


def test_bfloat16_gives_float32(submission):
    """bfloat16 inputs are computed in float32 and give float32 results."""
    mask = torch.tensor([[T, T, F], [T, T, F]])
    old = torch.tensor([[-1.0, -1.0, 0.0], [-1.0, -1.0, 0.0]], dtype=torch.bfloat16)
    new = torch.tensor(
        [[-1.0, -0.5, 0.0], [-1.5, -1.0, 0.0]], dtype=torch.bfloat16
    )  # ratios 1, e^0.5, e^-0.5, 1
    advantages = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 2.0, 0.0]], dtype=torch.bfloat16)
    pg_loss, pg_clipfrac = submission.policy_loss(new, old, advantages, mask)
    expect(
        isinstance(pg_loss, torch.Tensor) and pg_loss.dtype == torch.float32,
        "pg_loss must be a float32 tensor for bfloat16 inputs",
        detail=f"got {getattr(pg_loss, 'dtype', type(pg_loss).__name__)}",
        hint=HALF_DTYPE if getattr(pg_loss, "dtype", None) == torch.bfloat16 else "",
    )
    up, down = math.exp(0.5), math.exp(-0.5)
    assert_close(
        pg_loss,
        scalar((-1.0 - 1.2 + 0.8 - 2.0) / 4),
        what="pg_loss",
        misconceptions={
            MIN: scalar((-1.0 - up + down - 2.0) / 4),
            INVERTED: scalar((-1.0 - down + up - 2.0) / 4),
            CLAMP_PRODUCT: scalar((-1.0 - 1.2 + down - 1.2) / 4),
            PADDED_MEAN: scalar((-1.0 - 1.2 + 0.8 - 2.0) / 6),
        },
    )
    assert_close(pg_clipfrac, scalar(0.5), what="pg_clipfrac")
