"""Public tests: small cases you can check by hand.

Run them with `grader test top-p-sampling sampling.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

INF = float("-inf")
TIES = "ties at the top-k threshold dropped? keep every token whose logit is >= the k-th largest"
CROSSING = "the token that crosses p excluded? keep tokens while the total BEFORE them is < p"
TEMPERATURE = "temperature applied after filtering, or multiplied? divide the logits by T first"

# The lesson's example.
Z = torch.tensor([2.0, 4.0, 1.0, 3.0, 1.0, 0.0])


def kept(filtered):
    return [i for i, v in enumerate(filtered.tolist()) if v != INF]


def test_temperature_divides(submission):
    """temperature=2 halves the logits; nothing is removed without top-k or top-p."""
    assert_close(
        submission.filter_logits(torch.tensor([2.0, 1.0, 0.0]), temperature=2.0),
        torch.tensor([1.0, 0.5, 0.0]),
        misconceptions={TEMPERATURE: torch.tensor([4.0, 2.0, 0.0])},
    )


def test_top_k_keeps_ties(submission):
    """top_k=4 on the lesson's logits: the 4th largest is 1 and two tokens have it, so five stay."""
    got = submission.filter_logits(Z, top_k=4)
    expect(isinstance(got, torch.Tensor), "filter_logits must return a torch.Tensor")
    expect(
        len(kept(got)) != 4,
        f"exactly 4 tokens kept ({kept(got)}); tokens 2 and 4 are tied at the 4th largest logit",
        hint=TIES,
    )
    assert_close(got, torch.tensor([2.0, 4.0, 1.0, 3.0, 1.0, INF]))


def test_worked_example(submission):
    """top_k=4, top_p=0.9: top-k keeps five tokens, then the nucleus of those is tokens 1, 3 and 0."""
    assert_close(
        submission.filter_logits(Z, top_k=4, top_p=0.9),
        torch.tensor([2.0, 4.0, INF, 3.0, INF, INF]),
        misconceptions={CROSSING: torch.tensor([INF, 4.0, INF, 3.0, INF, INF])},
    )


def test_temperature_before_top_p(submission):
    """T=2, top_p=0.9: the flatter distribution needs five tokens to reach 0.9."""
    assert_close(
        submission.filter_logits(Z, temperature=2.0, top_p=0.9),
        torch.tensor([1.0, 2.0, 0.5, 1.5, 0.5, INF]),
        misconceptions={
            TEMPERATURE: torch.tensor([1.0, 2.0, INF, 1.5, INF, INF]),
            "temperature multiplied? divide the logits by T": torch.tensor([INF, 8.0, INF, 6.0, INF, INF]),
        },
    )


@pytest.mark.parametrize(
    "p, n_kept",
    [pytest.param(0.5, 2, id="p-0.5"), pytest.param(0.75, 3, id="p-0.75"), pytest.param(1.0, 4, id="p-1")],
)
def test_p_reached_exactly(submission, p, n_kept):
    """Four equally likely tokens (0.25 each): the running totals 0.25, 0.5, 0.75, 1 reach p exactly."""
    got = submission.filter_logits(torch.zeros(4), top_p=p)
    expect(isinstance(got, torch.Tensor), "filter_logits must return a torch.Tensor")
    expect(
        len(kept(got)) == n_kept,
        f"top_p={p} kept {len(kept(got))} of the 4 tokens; expected {n_kept}",
        hint="the nucleus stops at the token where the running total reaches p (>= p): "
        "keep a token iff the total before it is < p",
    )


def test_tiny_p_keeps_the_most_probable(submission):
    """top_p=1e-9 keeps exactly one token: the most probable."""
    assert_close(
        submission.filter_logits(Z, top_p=1e-9),
        torch.tensor([INF, 4.0, INF, INF, INF, INF]),
        hint="the most probable token must always survive: nothing comes before it, "
        "so the total before it is 0 < p",
    )


def test_invalid_settings_raise(submission):
    """temperature <= 0, top_k < 1 and top_p outside (0, 1] raise ValueError."""
    for kwargs in ({"temperature": 0.0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(ValueError):
            submission.filter_logits(Z, **kwargs)


def test_sample_shape_and_seed(submission):
    """(2, 3, V) logits, num_samples=5: int64 ids of shape (2, 3, 5), the same for the same seed."""
    logits = torch.randn(2, 3, 10)
    a = submission.sample(logits, seed=1234, num_samples=5)
    expect(isinstance(a, torch.Tensor), "sample must return a torch.Tensor")
    expect(tuple(a.shape) == (2, 3, 5), f"the ids have shape {tuple(a.shape)}; expected (2, 3, 5)")
    expect(a.dtype == torch.int64, f"the ids have dtype {a.dtype}; expected torch.int64")
    b = submission.sample(logits, seed=1234, num_samples=5)
    assert_close(
        b, a, what="the ids of a second call with the same seed", hint="seed a torch.Generator with `seed`"
    )


def test_removed_tokens_never_sampled(submission):
    """With top_k=2 only tokens 1 and 3 may come out, and both do."""
    ids = submission.sample(Z, seed=7, num_samples=2000, top_k=2)
    seen = sorted(set(ids.tolist()))
    expect(seen == [1, 3], f"sampled the tokens {seen}; expected exactly [1, 3]")


def test_frequencies(submission):
    """Two tokens of probability 1/2: 10,000 draws give each about 5,000 (a 1e-9 chance of > 340 off)."""
    ids = submission.sample(torch.tensor([0.0, 0.0, INF]), seed=99, num_samples=10_000)
    counts = torch.bincount(ids, minlength=3).tolist()
    log_term = math.log(2 * 3 / 1e-9)
    bound = log_term / 3 + math.sqrt(log_term**2 / 9 + 2 * log_term * 10_000 * 0.25)
    expect(
        counts[2] == 0 and abs(counts[0] - 5000) <= bound,
        f"counts {counts}; expected about [5000, 5000, 0]",
        hint="argmax instead of sampling? draw with torch.multinomial from softmax(filter_logits(...))",
    )
