"""Public tests: the worked example of the lesson, and the edge cases on small inputs.

Run them with `grader test dropout dropout.py`.
"""

import pytest
import torch

from grader.testing import assert_close, assert_gradients_close, expect

X = torch.arange(1.0, 9.0)  # [1, 2, ..., 8]
WORKED = torch.tensor([4 / 3, 8 / 3, 0.0, 0.0, 20 / 3, 8.0, 28 / 3, 32 / 3])  # p = 0.25, seed = 0
KEEP = torch.tensor([True, True, False, False, True, True, True, True])

NOT_RESCALED = "the kept elements were not rescaled? Inverted dropout multiplies them by 1 / (1 - p)"
SCALED_BY_P = "scaled by 1 / p? p is the probability of dropping: the kept elements are scaled by 1 / (1 - p)"
MULTIPLIED_BY_KEEP_PROB = (
    "multiplied by 1 - p? That is the old test-time rule: inverted dropout divides by 1 - p"
)
KEEP_INVERTED = "kept the elements where u < p? Those are the dropped ones: keep where u >= p"
P_ONE_NAN = "NaN for p = 1: x * keep / (1 - p) is 0 / 0 when nothing is kept; use a scale of 0 when p == 1"


def rule_mistakes(x, p, keep):
    """The outputs of the likely mistakes on x, given the rule's mask."""
    return {
        NOT_RESCALED: x * keep,
        SCALED_BY_P: x * keep / p,
        MULTIPLIED_BY_KEEP_PROB: x * keep * (1 - p),
        KEEP_INVERTED: x * ~keep / (1 - p),
    }


def test_worked_example(submission):
    """x = [1..8], p = 0.25, seed = 0: u >= 0.25 keeps all but elements 2 and 3; the rest times 4/3."""
    assert_close(
        submission.dropout(X, p=0.25, training=True, seed=0),
        WORKED,
        misconceptions=rule_mistakes(X, 0.25, KEEP),
        hint="draw u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), "
        "dtype=torch.float32) and keep where u >= p",
    )


def test_p_zero_is_identity(submission):
    """p = 0 keeps every element (every u >= 0) and the scale is 1: x comes back unchanged."""
    assert_close(submission.dropout(X, p=0.0, seed=3), X, rtol=0.0, atol=0.0)


def test_p_one_gives_zeros(submission):
    """p = 1 drops every element: zeros, never NaN (no division by 1 - p = 0)."""
    out = submission.dropout(X, p=1.0, seed=3)
    expect(isinstance(out, torch.Tensor), "dropout must return a torch.Tensor")
    assert_close(
        out,
        torch.zeros(8),
        rtol=0.0,
        atol=0.0,
        hint=P_ONE_NAN if bool(torch.isnan(out).any()) else "",
    )


@pytest.mark.parametrize("p", [pytest.param(0.25, id="p=0.25"), pytest.param(1.0, id="p=1")])
def test_eval_mode_is_identity(submission, p):
    """training=False returns x unchanged, whatever p."""
    assert_close(
        submission.dropout(X, p=p, training=False, seed=0),
        X,
        rtol=0.0,
        atol=0.0,
        hint="dropout is the identity at evaluation time: with training=False return x",
    )


def test_invalid_p_raises(submission):
    """p = 1.5 is not a probability: dropout raises ValueError."""
    try:
        submission.dropout(X, p=1.5, seed=0)
    except ValueError:
        return
    pytest.fail("dropout(x, p=1.5) returned normally; it must raise ValueError")


def test_same_seed_same_output(submission):
    """Two calls with seed 7 give the same output; a call with seed 8 gives another mask."""
    x = torch.ones(64)
    first = submission.dropout(x, p=0.5, seed=7)
    again = submission.dropout(x, p=0.5, seed=7)
    other = submission.dropout(x, p=0.5, seed=8)
    assert_close(
        again,
        first,
        what="the second call with seed 7",
        hint="the mask must come from torch.Generator().manual_seed(seed), not from torch's global generator",
    )
    expect(
        isinstance(other, torch.Tensor) and not torch.equal(other, first),
        "seeds 7 and 8 gave the same output: the seed must decide the mask",
    )


def test_float16_in_float16_out(submission):
    """A float16 x gives float16, with the worked example's mask (u is float32 whatever x's dtype)."""
    out = submission.dropout(X.half(), p=0.25, seed=0)
    expect(isinstance(out, torch.Tensor), "dropout must return a torch.Tensor")
    expect(
        out.dtype == torch.float16,
        f"dropout returned {out.dtype} for a float16 input; the output must have the input's dtype",
        hint="compute in float32 and cast the result back with .to(x.dtype) as the last step",
    )
    assert_close(out, WORKED.half())


def test_gradient_of_worked_example(submission):
    """Backward through the worked example: grad_output * keep / (1 - p), 0 for the dropped elements."""
    assert_close(
        submission.dropout(X, p=0.25, training=True, seed=0),
        WORKED,
        what="the output",
        misconceptions=rule_mistakes(X, 0.25, KEEP),
    )
    x = X.clone().requires_grad_()
    grad_output = torch.tensor([1.0, -1.0, 2.0, 3.0, 0.5, 1.0, 1.0, -2.0])
    assert_gradients_close(
        submission.dropout,
        lambda x, p, seed: x * KEEP * (1 / (1 - p)),
        (x,),
        {"p": 0.25, "seed": 0},
        grad_output=grad_output,
        names=("x",),
        hint="the output is right but a gradient is not: compute the output with tensor operations on x "
        "(x * keep * scale), no .detach(), .item() or in-place writes",
    )
