"""Hidden tests for kl-estimators: k1, k2 and k3 against their exact values (float64 on the trusted
side) in every dtype, k3 never negative near r = 1, gradients against autograd, unbiasedness on
seeded samples from a categorical policy whose KL to the reference is known exactly, the per-token
KL penalty rewards on padded batches, and inputs left unchanged."""

import math

import numpy as np
import pytest
import torch

from grader.testing import (
    assert_close,
    assert_gradients_close,
    call_unchanged,
    dtype_params,
    expect,
    shrink,
    tolerance,
)

RATIO_INVERTED = (
    "the ratio taken the wrong way round? r = p_ref(x) / q(x): log r = ref_logprobs - logprobs (reference "
    "minus policy)"
)
K2_HALF = "k2 without the 1/2? k2 = (log r)^2 / 2"
K3_NO_MINUS_ONE = "k3 without the - 1? k3 = (r - 1) - log r"
ESTIMATOR_IGNORED = "the estimator argument was ignored? Each of k1, k2 and k3 has its own formula"
PENALTY_ADDED = "the penalty was added? The reward is -beta * kl on each response token"
SCORE_EVERYWHERE = "the score was added at every response token? Add it once, at the last response token"
SCORE_AT_END = "the score was added at position T - 1? Add it at the last response token (the last True)"
SCORE_AT_COUNT = (
    "the score was added at index mask.sum() - 1? With a prompt before the response, the last response "
    "token is further right: take the last position where the mask is True"
)
MASK_IGNORED = "rewards outside the response? Prompt and padding positions get exactly 0"
PENALTY_ESTIMATOR = "the penalty used k1 whatever the estimator argument? Use the estimator given"
BETA_IGNORED = "beta ignored? Use the beta given (0.05 is only the default)"
NEGATIVE_K3 = (
    "k3 has negative values where r is within a hair of 1: exp(log r) - 1 - log r rounds below zero "
    "there. Compute r - 1 as torch.expm1(log r) (and clamp at 0 if you like)"
)
NOT_FINITE_OUTSIDE = (
    "the rewards are inf or NaN where the inputs are finite: outside the response the log-probs may "
    "hold any finite numbers, and k3 of those can overflow to inf (inf * 0 is NaN). Select with "
    "torch.where(mask, -beta * kl, 0) instead of multiplying by the mask"
)


# ---------------------------------------------------------------------------- exact values and mistakes


def log_ratio(lp, ref):
    return ref.double() - lp.double()


def exact(lp, ref, estimator, *, invert=False, half=True, minus_one=True):
    """The estimator in float64 (with knobs for the likely mistakes), cast to the inputs' dtype."""
    lr = log_ratio(lp, ref)
    if invert:
        lr = -lr
    if estimator == "k1":
        out = -lr
    elif estimator == "k2":
        out = lr.square() / (2.0 if half else 1.0)
    else:
        out = torch.expm1(lr) - lr + (0.0 if minus_one else 1.0)
    return out.to(lp.dtype)


def estimate_mistakes(lp, ref, estimator):
    found = {RATIO_INVERTED: exact(lp, ref, estimator, invert=True)}
    if estimator == "k2":
        found[K2_HALF] = exact(lp, ref, "k2", half=False)
    if estimator == "k3":
        found[K3_NO_MINUS_ONE] = exact(lp, ref, "k3", minus_one=False)
    if estimator != "k1":
        found[ESTIMATOR_IGNORED] = exact(lp, ref, "k1")
    return found


def oracle(logprobs, ref_logprobs, estimator="k1"):
    """The formulas in torch, for autograd on the trusted side."""
    lr = ref_logprobs - logprobs
    if estimator == "k1":
        return -lr
    if estimator == "k2":
        return 0.5 * lr.square()
    return torch.expm1(lr) - lr


def logprob_pair(rng, *shape, dtype=torch.float32, spread=0.5):
    """Log-probabilities of sampled tokens (<= 0) under the policy and a reference that differs by a
    log-ratio of about `spread`."""
    lp = -rng.exponential(2.0, size=shape)
    ref = np.minimum(lp + rng.normal(0.0, spread, size=shape), 0.0)
    return torch.from_numpy(lp).to(dtype), torch.from_numpy(ref).to(dtype)


ESTIMATORS = [pytest.param(e, id=e) for e in ("k1", "k2", "k3")]


# ---------------------------------------------------------------------------- the estimators


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimators(submission, seed, estimator):
    """kl_estimate on random log-probabilities, elementwise, against the exact value of the estimator."""

    def check(sizes, case_seed):
        lp, ref = logprob_pair(np.random.default_rng(case_seed), sizes["batch"], sizes["length"])
        assert_close(
            submission.kl_estimate(lp, ref, estimator),
            exact(lp, ref, estimator),
            what=f'kl_estimate(logprobs, ref_logprobs, "{estimator}")',
            misconceptions=estimate_mistakes(lp, ref, estimator),
        )

    shrink(check, {"batch": 4, "length": 16}, seed=seed)


@pytest.mark.parametrize("dtype", dtype_params("float64", "float16", "bfloat16"))
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_dtypes(submission, rng, estimator, dtype):
    """The estimates have the inputs' dtype and are right to that dtype's precision."""
    lp, ref = logprob_pair(rng, 3, 20, dtype=dtype)
    got = submission.kl_estimate(lp, ref, estimator)
    expect(isinstance(got, torch.Tensor), "kl_estimate must return a torch.Tensor")
    assert_close(
        got,
        exact(lp, ref, estimator),
        what=f'kl_estimate(..., "{estimator}")',
        **tolerance(dtype),
        misconceptions=estimate_mistakes(lp, ref, estimator),
    )


def test_any_shape(submission, rng):
    """kl_estimate is elementwise: a single token (0-dim) and a (2, 3, 4) block both work."""
    lp, ref = logprob_pair(rng, 2, 3, 4)
    for estimator in ("k1", "k2", "k3"):
        assert_close(
            submission.kl_estimate(lp, ref, estimator),
            exact(lp, ref, estimator),
            what=f'kl_estimate(..., "{estimator}") on a (2, 3, 4) tensor',
            misconceptions=estimate_mistakes(lp, ref, estimator),
        )
    assert_close(
        submission.kl_estimate(lp[0, 0, 0], ref[0, 0, 0], "k3"),
        exact(lp[0, 0, 0], ref[0, 0, 0], "k3"),
        what='kl_estimate(..., "k3") on 0-dim tensors',
    )


@pytest.mark.parametrize("dtype", dtype_params("float32", "float16", "bfloat16"))
def test_k3_never_negative(submission, rng, dtype):
    """k3 where r is within a hair of 1 (|log r| from 1e-8 to 1e-2) and where r = 1: never below 0."""
    n = 64
    lp = torch.from_numpy(-rng.uniform(0.05, 4.0, size=n)).to(dtype)
    tiny = 10.0 ** rng.uniform(-8.0, -2.0, size=n) * rng.choice([-1.0, 1.0], size=n)
    tiny[:8] = 0.0  # r = 1 exactly
    ref = (lp.double() + torch.from_numpy(tiny)).to(dtype)
    ref[:8] = lp[:8]
    got = submission.kl_estimate(lp, ref, "k3")
    expect(isinstance(got, torch.Tensor), "kl_estimate must return a torch.Tensor")
    negative = int((got < 0).sum()) if got.is_floating_point() else 0
    expect(
        negative == 0,
        "k3 has negative values",
        detail=f"{negative} of {n} values are below 0",
        hint=NEGATIVE_K3,
    )
    assert_close(
        got[:8], torch.zeros(8, dtype=dtype), what="k3 where logprobs == ref_logprobs", rtol=0.0, atol=0.0
    )
    assert_close(got, exact(lp, ref, "k3"), what='kl_estimate(..., "k3") near r = 1', **tolerance(dtype))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_gradients(submission, rng, estimator):
    """Backward through kl_estimate: the gradients of logprobs and ref_logprobs, against autograd."""
    lp, ref = logprob_pair(rng, 3, 10)
    assert_close(
        submission.kl_estimate(lp, ref, estimator),
        exact(lp, ref, estimator),
        what=f'kl_estimate(..., "{estimator}")',
        misconceptions=estimate_mistakes(lp, ref, estimator),
    )
    assert_gradients_close(
        submission.kl_estimate,
        oracle,
        (lp.requires_grad_(), ref.requires_grad_()),
        {"estimator": estimator},
        grad_output=torch.from_numpy(rng.standard_normal((3, 10)).astype(np.float32)),
        names=("logprobs", "ref_logprobs"),
        hint="the values are right but a gradient is not: use differentiable tensor operations "
        "(no .item(), .detach() or in-place writes)",
    )


@pytest.mark.parametrize("name", [pytest.param("k4", id="k4"), pytest.param("kl", id="kl")])
def test_unknown_estimator_raises(submission, name):
    """An estimator other than "k1", "k2" and "k3" raises ValueError."""
    lp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    try:
        submission.kl_estimate(lp, ref, name)
    except ValueError:
        return
    pytest.fail(f'kl_estimate(..., "{name}") did not raise ValueError', pytrace=False)


# ---------------------------------------------------------------------------- unbiasedness

# A categorical policy q and reference p over 6 tokens, from a fixed generator; every quantity
# below is exact (float64 sums over the 6 tokens). With these, KL(q || p) = 0.1565 and
# E_q[k2] = 0.1888. 50,000 tokens are sampled from q with a fixed torch.Generator, so the sample
# is the same at every run: the checks cannot flake. The bound is 6 standard errors of the mean
# (computed exactly from the distributions: 0.0027 for k1, 0.0009 for k3, 0.0015 for k2), while
# the mistakes land far outside it: k1 with the wrong sign at -0.156, k3 with r inverted at 0.273,
# k2 without the 1/2 at 0.378, k2 at 0.1888 when KL is 0.1565 (22 of k2's standard errors away).
VOCAB, SAMPLES, SIGMAS = 6, 50_000, 6.0


def distributions():
    g = torch.Generator().manual_seed(2020)
    a = torch.randn(VOCAB, generator=g, dtype=torch.float64)
    b = a + torch.randn(VOCAB, generator=g, dtype=torch.float64)
    return torch.log_softmax(a, 0), torch.log_softmax(b, 0)  # log q (policy), log p (reference)


def sampled_tokens():
    """(logprobs, ref_logprobs) of SAMPLES tokens drawn from q, as float32 (100, 500) tensors, and
    the per-token values of every estimator over the vocabulary, in float64."""
    log_q, log_p = distributions()
    g = torch.Generator().manual_seed(17)
    x = torch.multinomial(log_q.exp(), SAMPLES, replacement=True, generator=g)
    lp = log_q[x].float().reshape(100, 500)
    ref = log_p[x].float().reshape(100, 500)
    return lp, ref


def expectation_and_error(values):
    """E_q[values] and the standard error of a mean of SAMPLES of them, both exact (float64)."""
    log_q, _ = distributions()
    q = log_q.exp()
    mean = (q * values).sum()
    sd = ((q * (values - mean).square()).sum()).sqrt()
    return float(mean), float(sd) / math.sqrt(SAMPLES)


def per_token(estimator, *, invert=False, half=True):
    """The estimator's value for each token of the vocabulary (float64), with the mistakes' knobs."""
    log_q, log_p = distributions()
    lr = log_p - log_q
    if invert:
        lr = -lr
    if estimator == "k1":
        return -lr
    if estimator == "k2":
        return lr.square() / (2.0 if half else 1.0)
    return torch.expm1(lr) - lr


def named_mistake(mean, se, mistakes):
    """The label of the mistake whose exact expectation the sample mean lands on (within the bound)."""
    for label, values in mistakes.items():
        expected, _ = expectation_and_error(values)
        if abs(mean - expected) <= SIGMAS * se:
            return label
    return ""


def check_mean(submission, estimator, target, what, mistakes):
    """The mean of the submission's `estimator` over the seeded samples is within SIGMAS standard
    errors of `target`; a mistake whose expectation the mean lands on is named."""
    lp, ref = sampled_tokens()
    got = submission.kl_estimate(lp, ref, estimator)
    expect(
        isinstance(got, torch.Tensor) and got.shape == lp.shape and got.is_floating_point(),
        "kl_estimate must return a floating-point tensor of the inputs' shape",
    )
    _, se = expectation_and_error(per_token(estimator))
    mean = float(got.double().mean())
    ok = abs(mean - target) <= SIGMAS * se
    expect(
        ok,
        f"the mean of {estimator} over the samples is not within {SIGMAS:g} standard errors of {what}",
        detail=f"the mean is {mean:.5f}; allowed {target:.5f} +- {SIGMAS * se:.5f}",
        hint="" if ok else named_mistake(mean, se, mistakes),
    )


@pytest.mark.parametrize("estimator", [pytest.param("k1", id="k1"), pytest.param("k3", id="k3")])
def test_unbiased(submission, estimator):
    """k1 and k3 are unbiased: their mean over 50,000 seeded samples from q is within 6 standard
    errors of the exact KL(q || p) = 0.1565 (the same samples at every run)."""
    log_q, log_p = distributions()
    kl = float((log_q.exp() * (log_q - log_p)).sum())
    mistakes = {
        RATIO_INVERTED: per_token(estimator, invert=True),
        "the mean lands on E_q[k2], not on KL: k1 = -log r and k3 = (r - 1) - log r": per_token("k2"),
    }
    check_mean(submission, estimator, kl, f"KL(q || p) = {kl:.4f}, as an unbiased estimator's must", mistakes)


def test_k2_is_biased(submission):
    """k2 is biased: its mean over the same samples lands on E_q[(log r)^2 / 2] = 0.1888, not on KL 0.1565."""
    expected, _ = expectation_and_error(per_token("k2"))
    mistakes = {
        K2_HALF: per_token("k2", half=False),
        "the mean of k2 lands on KL(q || p): k2 = (log r)^2 / 2 is a different, biased estimator": per_token(
            "k1"
        ),
    }
    check_mean(submission, "k2", expected, f"E_q[(log r)^2 / 2] = {expected:.4f}", mistakes)


# ---------------------------------------------------------------------------- the penalty rewards


def response_batch(rng, batch, length, dtype=torch.float32, wild=True, spread=0.5):
    """(scores, logprobs, ref_logprobs, response_mask): every row has a prompt of 0 or more tokens,
    a response of at least one token, and padding after it (0 or more). Positions outside the
    response hold other numbers, among them log-ratios of 200 (whose exp overflows) when `wild`."""
    mask = np.zeros((batch, length), dtype=bool)
    for i in range(batch):
        prompt = int(rng.integers(0, length))
        mask[i, prompt : prompt + int(rng.integers(1, length - prompt + 1))] = True
    if batch > 1 and length > 2:  # a row with both a prompt and padding
        mask[1] = False
        mask[1, 1 : length - 1] = True
    lp, ref = logprob_pair(rng, batch, length, dtype=torch.float64, spread=spread)
    if wild:
        outside = ~torch.from_numpy(mask)
        far = torch.from_numpy(rng.random((batch, length)) < 0.5) & outside
        lp = torch.where(far, torch.full_like(lp, -200.0), lp)
        ref = torch.where(far, torch.zeros_like(ref), ref)
    scores = torch.from_numpy(rng.normal(0.0, 2.0, size=batch))
    return scores.to(dtype), lp.to(dtype), ref.to(dtype), torch.from_numpy(mask)


def rewards_formula(scores, lp, ref, mask, beta, estimator, *, sign=-1.0, where="last", use_mask=True):
    """The rewards in float64, with knobs for the likely mistakes, cast to the log-probs' dtype."""
    kl = exact(lp.double(), ref.double(), estimator)
    r = sign * beta * kl
    if use_mask:
        r = torch.where(mask, r, torch.zeros((), dtype=torch.float64))
    else:
        r = torch.where(torch.isfinite(r), r, torch.zeros((), dtype=torch.float64))
    s = scores.double().unsqueeze(-1)
    positions = torch.arange(mask.shape[-1])
    if where == "last":
        at = positions == torch.where(mask, positions, -1).amax(-1, keepdim=True)
    elif where == "end":
        at = (positions == mask.shape[-1] - 1).expand(mask.shape)
    elif where == "count":
        at = positions == mask.sum(-1, keepdim=True) - 1
    else:  # every response token
        at = mask
    return torch.where(at, r + s, r).to(lp.dtype)


def rewards_mistakes(scores, lp, ref, mask, beta, estimator):
    args = (scores, lp, ref, mask, beta)
    found = {}
    for label, wrong in estimate_mistakes(lp, ref, estimator).items():
        if label != ESTIMATOR_IGNORED:
            kl = wrong.double()
            r = torch.where(mask, -beta * kl, torch.zeros((), dtype=torch.float64))
            last = torch.arange(mask.shape[-1]) == torch.where(mask, torch.arange(mask.shape[-1]), -1).amax(
                -1, keepdim=True
            )
            found[label] = torch.where(last, r + scores.double().unsqueeze(-1), r).to(lp.dtype)
    found |= {
        PENALTY_ADDED: rewards_formula(*args, estimator, sign=1.0),
        SCORE_EVERYWHERE: rewards_formula(*args, estimator, where="every"),
        SCORE_AT_END: rewards_formula(*args, estimator, where="end"),
        SCORE_AT_COUNT: rewards_formula(*args, estimator, where="count"),
        MASK_IGNORED: rewards_formula(*args, estimator, use_mask=False),
        BETA_IGNORED: rewards_formula(scores, lp, ref, mask, 0.05, estimator),
    }
    if estimator != "k1":
        found[PENALTY_ESTIMATOR] = rewards_formula(*args, "k1")
    return found


def check_rewards(got, scores, lp, ref, mask, beta, estimator, *, what="kl_penalty_rewards", **tol):
    expect(isinstance(got, torch.Tensor), "kl_penalty_rewards must return a torch.Tensor")
    hint = ""
    if got.is_floating_point() and got.shape == mask.shape and not bool(torch.isfinite(got).all()):
        hint = NOT_FINITE_OUTSIDE
    assert_close(
        got,
        rewards_formula(scores, lp, ref, mask, beta, estimator),
        what=what,
        hint=hint,
        misconceptions=rewards_mistakes(scores, lp, ref, mask, beta, estimator),
        **tol,
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_penalty_rewards(submission, seed, estimator):
    """kl_penalty_rewards on batches with prompts and padding of random lengths, beta = 0.1."""

    def check(sizes, case_seed):
        scores, lp, ref, mask = response_batch(
            np.random.default_rng(case_seed), sizes["batch"], sizes["length"]
        )
        got = submission.kl_penalty_rewards(scores, lp, ref, mask, beta=0.1, estimator=estimator)
        check_rewards(got, scores, lp, ref, mask, 0.1, estimator)

    shrink(check, {"batch": 5, "length": 12}, seed=seed, minimum={"batch": 2, "length": 3})


def test_penalty_defaults(submission, rng):
    """Without beta and estimator, the penalty is -0.05 * k1."""
    scores, lp, ref, mask = response_batch(rng, 4, 10)
    check_rewards(submission.kl_penalty_rewards(scores, lp, ref, mask), scores, lp, ref, mask, 0.05, "k1")


@pytest.mark.parametrize("beta", [pytest.param(0.01, id="beta-0.01"), pytest.param(0.4, id="beta-0.4")])
def test_penalty_beta(submission, rng, beta):
    """beta scales the penalty on every response token (k3 here)."""
    scores, lp, ref, mask = response_batch(rng, 4, 10)
    got = submission.kl_penalty_rewards(scores, lp, ref, mask, beta=beta, estimator="k3")
    check_rewards(got, scores, lp, ref, mask, beta, "k3")


def test_one_token_responses(submission, rng):
    """Responses of a single token, at the first position, in the middle and at the last position."""
    scores, lp, ref, _ = response_batch(rng, 3, 6)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[0, 0] = mask[1, 3] = mask[2, 5] = True
    got = submission.kl_penalty_rewards(scores, lp, ref, mask, beta=0.2, estimator="k2")
    check_rewards(got, scores, lp, ref, mask, 0.2, "k2")


@pytest.mark.parametrize("dtype", dtype_params("float64", "float16", "bfloat16"))
def test_penalty_dtypes(submission, rng, dtype):
    """The rewards have the log-probs' dtype (scores given in the same dtype)."""
    scores, lp, ref, mask = response_batch(rng, 4, 9, dtype=dtype, wild=False, spread=1.0)
    got = submission.kl_penalty_rewards(scores, lp, ref, mask, beta=0.5, estimator="k3")
    check_rewards(got, scores, lp, ref, mask, 0.5, "k3", **tolerance(dtype))


# ---------------------------------------------------------------------------- inputs left unchanged

UNCHANGED_HINT = (
    "compute new tensors (torch.where, -beta * kl, ...): in-place operations (+=, masked_fill_, "
    "index assignment) on an argument overwrite the caller's tensors"
)


def test_inputs_unchanged(submission, rng):
    """kl_estimate and kl_penalty_rewards leave the tensors given to them as they were."""
    # Only the inputs are checked here: the values of the same calls are checked by test_estimators
    # and test_penalty_rewards.
    scores, lp, ref, mask = response_batch(rng, 4, 8)
    for estimator in ("k1", "k3"):
        call_unchanged(
            submission.kl_estimate,
            lp,
            ref,
            names=("logprobs", "ref_logprobs"),
            what="kl_estimate",
            hint=UNCHANGED_HINT,
            estimator=estimator,
        )
    call_unchanged(
        submission.kl_penalty_rewards,
        scores,
        lp,
        ref,
        mask,
        names=("scores", "logprobs", "ref_logprobs", "response_mask"),
        what="kl_penalty_rewards",
        hint=UNCHANGED_HINT,
        beta=0.1,
        estimator="k3",
    )
