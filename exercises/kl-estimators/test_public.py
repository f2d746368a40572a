"""Public tests: the worked examples of the lesson, small enough to check by hand.

Run them with `grader test kl-estimators kl_estimators.py`.
"""

import math

import torch

from grader.testing import assert_close, expect

RATIO_INVERTED = (
    "the ratio taken the wrong way round? r = p_ref(x) / q(x): log r = ref_logprobs - logprobs (reference "
    "minus policy)"
)
K2_HALF = "k2 without the 1/2? k2 = (log r)^2 / 2"
PENALTY_ADDED = "the penalty was added? The reward is -beta * kl on each response token"
SCORE_EVERYWHERE = "the score was added at every response token? Add it once, at the last response token"
SCORE_AT_END = "the score was added at position T - 1? Add it at the last response token (the last True)"
MASK_IGNORED = "rewards outside the response? Prompt and padding positions get exactly 0"

# the worked example: q = [0.5, 0.5] (policy), p = [0.25, 0.75] (reference), one sample of each token
LOGPROBS = torch.tensor([math.log(0.5), math.log(0.5)])
REF_LOGPROBS = torch.tensor([math.log(0.25), math.log(0.75)])
LOG_R = [math.log(0.5), math.log(1.5)]


def test_k1_worked_example(submission):
    """k1 = -log r: [0.69315, -0.40547] (negative on the token the reference prefers)."""
    assert_close(
        submission.kl_estimate(LOGPROBS, REF_LOGPROBS, "k1"),
        torch.tensor([-x for x in LOG_R]),
        what='kl_estimate(..., "k1")',
        misconceptions={RATIO_INVERTED: torch.tensor(LOG_R)},
    )


def test_k2_worked_example(submission):
    """k2 = (log r)^2 / 2: [0.24023, 0.08220]."""
    assert_close(
        submission.kl_estimate(LOGPROBS, REF_LOGPROBS, "k2"),
        torch.tensor([x * x / 2 for x in LOG_R]),
        what='kl_estimate(..., "k2")',
        misconceptions={K2_HALF: torch.tensor([x * x for x in LOG_R])},
    )


def test_k3_worked_example(submission):
    """k3 = (r - 1) - log r with r = 0.5 and 1.5: [0.19315, 0.09453]."""
    assert_close(
        submission.kl_estimate(LOGPROBS, REF_LOGPROBS, "k3"),
        torch.tensor([math.expm1(x) - x for x in LOG_R]),
        what='kl_estimate(..., "k3")',
        misconceptions={RATIO_INVERTED: torch.tensor([math.expm1(-x) + x for x in LOG_R])},
    )


def test_default_is_k1(submission):
    """Without an estimator argument, kl_estimate gives k1."""
    assert_close(
        submission.kl_estimate(LOGPROBS, REF_LOGPROBS),
        torch.tensor([-x for x in LOG_R]),
        what="kl_estimate(logprobs, ref_logprobs)",
        misconceptions={RATIO_INVERTED: torch.tensor(LOG_R)},
    )


def test_k3_is_zero_when_equal(submission):
    """Policy and reference agree on every token (r = 1): k3 is exactly 0 everywhere."""
    lp = torch.tensor([-0.1, -2.5, -7.0])
    got = submission.kl_estimate(lp, lp.clone(), "k3")
    assert_close(got, torch.zeros(3), what='kl_estimate(x, x, "k3")', rtol=0.0, atol=0.0)


def test_penalty_worked_example(submission):
    """One row: a prompt token, three response tokens (k1 = 0.2, -0.1, 0.3), a padding position;
    beta = 0.1, score = 1.0: the rewards are [0, -0.02, 0.01, 0.97, 0]."""
    logprobs = torch.tensor([[-1.0, -1.0, -2.0, -0.5, -3.0]])
    ref = torch.tensor([[-2.0, -1.2, -1.9, -0.8, -1.0]])
    mask = torch.tensor([[False, True, True, True, False]])
    got = submission.kl_penalty_rewards(torch.tensor([1.0]), logprobs, ref, mask, beta=0.1)
    expect(isinstance(got, torch.Tensor), "kl_penalty_rewards must return a torch.Tensor")
    assert_close(
        got,
        torch.tensor([[0.0, -0.02, 0.01, 0.97, 0.0]]),
        what="kl_penalty_rewards",
        misconceptions={
            PENALTY_ADDED: torch.tensor([[0.0, 0.02, -0.01, 1.03, 0.0]]),
            SCORE_EVERYWHERE: torch.tensor([[0.0, 0.98, 1.01, 0.97, 0.0]]),
            SCORE_AT_END: torch.tensor([[0.0, -0.02, 0.01, -0.03, 1.0]]),
            MASK_IGNORED: torch.tensor([[-0.1, -0.02, 0.01, 0.97, 0.2]]),
        },
    )
