"""Public tests: the worked examples of the lesson, small enough to check by hand.

Run them with `grader test model-merging model_merging.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

NO_BASE = (
    "the output matches base + lam * the sum of the fine-tuned weights: a task vector is finetuned - base"
)
AVERAGED = "the output matches the task vectors averaged over the tasks: task arithmetic sums them"
FIRST_WEIGHT = "the output matches lam[0] used for every task: weight task i by lam[i]"
SIGNED_RANK = "the output matches a ranking by signed value: rank the entries by magnitude |x|"
SMALLEST = "the output matches the smallest magnitudes kept: keep the largest"
TOPK = "the output matches exactly k entries kept: every entry tied with the k-th largest |x| is kept"
COUNT_VOTE = (
    "the output matches a sign elected by counting tasks: elect the sign of the sum of the trimmed values"
)
OVER_TASKS = (
    "the output matches a disjoint mean divided by the number of tasks: divide by the agreeing entries"
)
NO_TRIM = "the output matches task vectors left untrimmed: keep k = int(density * numel) entries of each"
LAM_IGNORED = "the output matches lam = 1: the result is base + lam * the disjoint mean"
UNIT_SLERP = "the output matches slerp of the normalised tensors: apply the weights to the original tensors"
LINEAR = "the output matches linear interpolation where the angle is not small: use the slerp formula there"
REVERSED = "the output matches t measured from b: t = 0 gives a, t = 1 gives b"
ZERO_LINEAR = (
    "the output matches linear interpolation for a tensor of zeros: it is not normalised, so theta = pi/2"
)
FALLBACK_HINT = (
    "linear interpolation is expected for (anti)parallel tensors: |dot| > 0.9995, dot near -1 included"
)


def sd(*values):
    """A state dict with one tensor "w"."""
    return {"w": torch.tensor(values)}


def test_task_arithmetic_worked_example(submission):
    """base [1, 2, 3], ft1 [2, 2, 1], ft2 [1, 5, 4], lam = 1: base + tau1 + tau2 = [2, 5, 2]."""
    base, ft1, ft2 = sd(1.0, 2.0, 3.0), sd(2.0, 2.0, 1.0), sd(1.0, 5.0, 4.0)
    assert_close(
        submission.task_arithmetic(base, [ft1, ft2]),
        sd(2.0, 5.0, 2.0),
        misconceptions={NO_BASE: sd(4.0, 9.0, 8.0), AVERAGED: sd(1.5, 3.5, 2.5)},
    )


def test_task_arithmetic_per_task_weights(submission):
    """lam = [1, -0.5]: [1, 2, 3] + [1, 0, -2] - 0.5 * [0, 3, 1] = [2, 0.5, 0.5]."""
    base, ft1, ft2 = sd(1.0, 2.0, 3.0), sd(2.0, 2.0, 1.0), sd(1.0, 5.0, 4.0)
    assert_close(
        submission.task_arithmetic(base, [ft1, ft2], lam=[1.0, -0.5]),
        sd(2.0, 0.5, 0.5),
        misconceptions={FIRST_WEIGHT: sd(2.0, 5.0, 2.0)},
    )


def test_magnitude_prune_by_hand(submission):
    """[0.5, -3, 1, -2, 0.1] at density 0.4: k = 2, so -3 and -2 stay and the rest become 0."""
    tau = torch.tensor([0.5, -3.0, 1.0, -2.0, 0.1])
    assert_close(
        submission.magnitude_prune(tau, 0.4),
        torch.tensor([0.0, -3.0, 0.0, -2.0, 0.0]),
        misconceptions={
            SIGNED_RANK: torch.tensor([0.5, 0.0, 1.0, 0.0, 0.0]),
            SMALLEST: torch.tensor([0.5, 0.0, 0.0, 0.0, 0.1]),
        },
    )


def test_magnitude_prune_keeps_ties(submission):
    """[1, -2, 2, 0.5] at density 0.25: k = 1, the k-th largest |x| is 2, and both -2 and 2 reach it."""
    tau = torch.tensor([1.0, -2.0, 2.0, 0.5])
    out = submission.magnitude_prune(tau, 0.25)
    kept = int((out != 0).sum()) if isinstance(out, torch.Tensor) else -1
    assert_close(out, torch.tensor([0.0, -2.0, 2.0, 0.0]), hint=TOPK if kept == 1 else "")


@pytest.mark.parametrize(
    "density, expected",
    [
        pytest.param(0.2, [0.0, 0.0, 0.0, 0.0], id="k-is-0"),
        pytest.param(1.0, [1.0, -2.0, 2.0, 0.5], id="density-1"),
    ],
)
def test_magnitude_prune_extremes(submission, density, expected):
    """Density 0.2 of 4 entries: k = int(0.8) = 0, nothing is kept. Density 1: everything is."""
    assert_close(
        submission.magnitude_prune(torch.tensor([1.0, -2.0, 2.0, 0.5]), density), torch.tensor(expected)
    )


def test_ties_worked_example(submission):
    """The lesson's TIES example: density 0.5, lam 0.5, merged = [3.5, -0.5, 2, 1]."""
    base = sd(1.0, 1.0, 1.0, 1.0)
    taus = [[5.0, -1.0, 2.0, 0.5], [-2.0, 2.0, -1.0, 0.5], [-2.0, -3.0, 1.0, 1.0]]
    finetuned = [{"w": base["w"] + torch.tensor(tau)} for tau in taus]
    assert_close(
        submission.ties_merge(base, finetuned, density=0.5, lam=0.5),
        sd(3.5, -0.5, 2.0, 1.0),
        misconceptions={
            COUNT_VOTE: sd(0.0, 2.0, 2.0, 1.0),
            OVER_TASKS: sd(1.0 + 5 / 6, 0.5, 1.0 + 1 / 3, 1.0),
            NO_TRIM: sd(3.5, 0.0, 1.75, 1.0 + 1 / 3),
            LAM_IGNORED: sd(6.0, -2.0, 3.0, 1.0),
        },
    )


def test_slerp_orthogonal(submission):
    """a = [2, 0], b = [0, 2], t = 0.5: theta = pi/2, weights sin(pi/4), the result keeps norm 2."""
    r = math.sqrt(2.0)
    assert_close(
        submission.slerp(sd(2.0, 0.0), sd(0.0, 2.0), 0.5),
        sd(r, r),
        misconceptions={UNIT_SLERP: sd(r / 2, r / 2), LINEAR: sd(1.0, 1.0)},
    )


def test_slerp_different_norms(submission):
    """a = [3, 0], b = [0, 1], t = 1/3: weights sin(pi/3) and sin(pi/6): [2.5981, 0.5]."""
    assert_close(
        submission.slerp(sd(3.0, 0.0), sd(0.0, 1.0), 1 / 3),
        sd(3 * math.sin(math.pi / 3), 0.5),
        misconceptions={
            UNIT_SLERP: sd(math.sin(math.pi / 3), 0.5),
            LINEAR: sd(2.0, 1 / 3),
            REVERSED: sd(1.5, math.sin(math.pi / 3)),
        },
    )


@pytest.mark.parametrize(
    "a, b, t, expected",
    [
        pytest.param([1.0, 2.0], [2.0, 4.0], 0.25, [1.25, 2.5], id="parallel"),
        pytest.param([1.0, 0.0], [-3.0, 0.0], 0.5, [-1.0, 0.0], id="opposite"),
    ],
)
def test_slerp_linear_fallback(submission, a, b, t, expected):
    """Parallel (dot = 1) and opposite (dot = -1) vectors: |dot| > 0.9995, so (1 - t) a + t b."""
    out = submission.slerp(sd(*a), sd(*b), t)
    got = out.get("w") if isinstance(out, dict) else None
    expect(
        isinstance(got, torch.Tensor) and bool(torch.isfinite(got).all()),
        "slerp returned non-finite values for (anti)parallel tensors",
        detail=f"got {out}",
        hint=FALLBACK_HINT,
    )
    assert_close(out, sd(*expected), hint=FALLBACK_HINT)


def test_slerp_zero_tensor(submission):
    """a = [0, 0] is not normalised (norm <= 1e-8), so dot = 0, theta = pi/2: sin(pi/6) * b = [0, 1]."""
    assert_close(
        submission.slerp(sd(0.0, 0.0), sd(0.0, 2.0), 1 / 3),
        sd(0.0, 1.0),
        misconceptions={ZERO_LINEAR: sd(0.0, 2 / 3)},
    )


def test_mismatched_keys_raise(submission):
    """A fine-tuned state dict with a key the base does not have raises ValueError."""
    base = {"w": torch.ones(2), "b": torch.zeros(2)}
    other = {"w": torch.ones(2), "bias": torch.zeros(2)}
    with pytest.raises(ValueError):
        submission.task_arithmetic(base, [other])
