"""Hidden tests for speculative-decoding: random drafts against an independent float64 oracle (with
the outputs of the likely mistakes as hints), the edge cases the lesson names (k = 0, q(x) = 0,
p = q, an empty residual, running totals that end below 1, ties), half-precision inputs, exact
output distributions on dyadic cases, and inputs left unchanged.

Random cases keep every uniform at least MARGIN away from the acceptance ratio it is compared
with and from every running total of the distribution it samples from, so that float32 against
float64 arithmetic cannot change an answer; ties are tested on numbers exact in binary.
"""

from fractions import Fraction as F

import numpy as np
import pytest
import torch

from grader.testing import assert_close, call_unchanged, expect, shrink

INVERTED = "acceptance inverted? accept x_i iff u_i < p_i(x_i) / q_i(x_i)"
Q_OVER_P = "ratio upside down? the acceptance ratio is p_i(x_i) / q_i(x_i), target over draft"
FROM_P = "replacement sampled from p_i? on a rejection sample from normalise(max(0, p_i - q_i))"
UNNORMALISED = "residual not normalised? divide max(0, p_i - q_i) by its sum before sampling"
NO_BONUS = "no bonus token? when all k drafts are accepted, append a token sampled from p_{k+1}"
COUNTED = (
    "counted the accepted drafts instead of stopping at the first rejection? everything after the "
    "first rejected draft is discarded"
)
NON_STRICT = "accepted when u_i equals the ratio? accept iff u_i < ratio, strictly"
TIE = "the first index whose running total is strictly greater than u: searchsorted(..., right=True)"
LOW_PRECISION = (
    "computed in the inputs' precision? convert the probabilities to float64 before the ratios and the "
    "running totals"
)
MARGIN = 1e-5


# --------------------------------------------------------------------------- an independent oracle


def draw(weights, u):
    """Inverse CDF in float64: the first index whose running total is > u, else the last non-zero."""
    totals = np.cumsum(weights)
    j = int(np.searchsorted(totals, u, side="right"))
    return j if j < len(weights) else int(np.flatnonzero(weights > 0)[-1])


def residual(p, q, *, normalise=True):
    r = np.maximum(p - q, 0.0)
    if r.sum() <= 0:
        return p
    return r / r.sum() if normalise else r


def ratio(p, q):
    if q == 0:
        return np.inf if p > 0 else 0.0
    return p / q


def rule(q, x, p, u, us, mistake=None):
    """The acceptance rule on float64 numpy arrays, right (mistake=None) or wrong in one named way."""
    k = len(x)
    tests = []
    for i in range(k):
        r = ratio(q[i, x[i]], p[i, x[i]]) if mistake == "q_over_p" else ratio(p[i, x[i]], q[i, x[i]])
        if mistake == "inverted":
            tests.append(u[i] > r)
        else:
            tests.append(u[i] <= r if mistake == "non_strict" else u[i] < r)
    n = sum(tests) if mistake == "counted" else next((i for i, ok in enumerate(tests) if not ok), k)
    out = [int(t) for t in x[:n]]
    if n < k:
        if mistake == "from_p":
            dist = p[n]
        else:
            dist = residual(p[n], q[n], normalise=mistake != "unnormalised")
        out.append(draw(dist, us))
    elif mistake != "no_bonus":
        out.append(draw(p[k], us))
    return out


def used_distribution(q, x, p, u):
    """The distribution the correct rule samples its last token from."""
    for i in range(len(x)):
        if not u[i] < ratio(p[i, x[i]], q[i, x[i]]):
            return residual(p[i], q[i])
    return p[len(x)]


MISTAKES = {
    INVERTED: "inverted",
    Q_OVER_P: "q_over_p",
    FROM_P: "from_p",
    UNNORMALISED: "unnormalised",
    NO_BONUS: "no_bonus",
    COUNTED: "counted",
    NON_STRICT: "non_strict",
}


def as64(t):
    return t.to(torch.float64).numpy()


def oracle_and_mistakes(q, x, p, u, us):
    """The right answer, and the outputs of the mistakes that give a wrong one; a mistake whose output
    another mistake also gives is left out (its hint would be a guess)."""
    args = (as64(q), x.numpy(), as64(p), as64(u), us)
    want = rule(*args)
    outputs = {label: rule(*args, mistake=m) for label, m in MISTAKES.items()}
    return want, {
        label: out
        for label, out in outputs.items()
        if out != want and sum(other == out for other in outputs.values()) == 1
    }


def check_tokens(got, want, misconceptions=None, hint=""):
    expect(
        isinstance(got, list) and all(type(v) is int for v in got),
        "verify_draft must return a Python list of ints",
    )
    assert_close(got, want, what="the returned tokens", misconceptions=misconceptions, hint=hint)


# --------------------------------------------------------------------------- random cases


def distributions(rng, rows, vocab, scale=1.5):
    z = rng.standard_normal((rows, vocab)) * scale
    e = np.exp(z - z.max(axis=-1, keepdims=True, initial=-np.inf))
    return torch.from_numpy(e / e.sum(axis=-1, keepdims=True)).to(torch.float32)


def clear_uniform(rng, low=0.0):
    return float(rng.uniform(low, 1.0))


def random_case(rng, k, vocab, *, dtype=torch.float32, near=None):
    """A draft of k tokens with uniforms clear of every boundary (or `near` a boundary: offset by
    exactly that much, for the precision tests)."""
    q = distributions(rng, k, vocab).to(dtype)
    # the target: the draft's distribution mixed with another one, so that some drafts pass
    mix = torch.from_numpy(rng.uniform(0.0, 1.0, (k + 1, 1))).to(torch.float32)
    other = distributions(rng, k + 1, vocab)
    base = torch.cat([q.float(), distributions(rng, 1, vocab)])
    p = (mix * base + (1 - mix) * other).to(dtype)
    q64, p64 = as64(q), as64(p)
    x = torch.tensor([int(rng.choice(vocab, p=q64[i] / q64[i].sum())) for i in range(k)], dtype=torch.int64)
    u = []
    for i in range(k):
        r = ratio(p64[i, x[i]], q64[i, x[i]])
        if near is not None and 2 * near < r < 1 - 2 * near:
            u.append(r + near * float(rng.choice([-1, 1])))
            continue
        while True:
            v = clear_uniform(rng)
            if abs(v - r) >= MARGIN:
                break
        u.append(v)
    u = torch.tensor(u, dtype=torch.float64).to(torch.float32 if dtype == torch.float32 else torch.float64)
    dist = used_distribution(q64, x.numpy(), p64, as64(u))
    totals = np.cumsum(dist)
    while True:
        if near is not None:
            inner = totals[:-1][(totals[:-1] > 2 * near) & (totals[:-1] < 1 - 2 * near)]
            if len(inner):
                us = float(rng.choice(inner)) + near * float(rng.choice([-1, 1]))
            else:
                us = clear_uniform(rng)
        else:
            us = clear_uniform(rng)
        clearance = near / 2 if near is not None else MARGIN
        if np.abs(totals - us).min() >= clearance and us < totals[-1] - MARGIN:
            return q, x, p, u, us


def test_random_drafts(submission, seed):
    """Random drafts of up to 6 tokens over up to 40 tokens, against an independent float64 oracle."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        for _ in range(3):
            q, x, p, u, us = random_case(rng, sizes["k"], sizes["vocab"])
            want, mistaken = oracle_and_mistakes(q, x, p, u, us)
            check_tokens(submission.verify_draft(q, x, p, u, us), want, mistaken)

    shrink(check, {"k": 6, "vocab": 40}, seed=seed, minimum={"k": 1, "vocab": 2}, budget=30)


def test_matches_the_reference(submission, reference, seed):
    """Longer drafts (8 tokens over 200) with the target close to the draft: long accepted prefixes."""
    rng = np.random.default_rng(seed + 17)
    for _ in range(6):
        q, x, p, u, us = random_case(rng, 8, 200)
        # most of the target's mass on the draft's distribution: most drafts pass
        p = torch.cat([0.95 * q + 0.05 * p[:-1], p[-1:]])
        q64, p64 = as64(q), as64(p)
        u64 = as64(u)
        for i in range(8):
            if abs(u64[i] - ratio(p64[i, x[i]], q64[i, x[i]])) < MARGIN:
                u[i] = 0.0
        dist = used_distribution(q64, x.numpy(), p64, as64(u))
        if np.abs(np.cumsum(dist) - us).min() < MARGIN:
            continue
        want = reference.verify_draft(q, x, p, u, us)
        expect(want == rule(q64, x.numpy(), p64, as64(u), us), "the reference and the oracle disagree")
        _, mistaken = oracle_and_mistakes(q, x, p, u, us)
        check_tokens(submission.verify_draft(q, x, p, u, us), want, mistaken)


def test_no_draft(submission, seed):
    """k = 0: one token sampled from p_1 by the inverse CDF, for random distributions."""
    rng = np.random.default_rng(seed)
    for vocab in (1, 2, 7, 50):
        q, x, p, u, us = random_case(rng, 0, vocab)
        check_tokens(submission.verify_draft(q, x, p, u, us), [draw(as64(p)[0], us)])


# --------------------------------------------------------------------------- edge cases


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def ids(tokens):
    return torch.tensor(tokens, dtype=torch.int64)


def test_zero_draft_probability(submission):
    """A drafted token with q_i(x_i) = 0: accepted whatever u_i when p_i(x_i) > 0, rejected when it is 0."""
    q = t([[0.5, 0.5, 0.0]])
    p = t([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0]])
    for u in (0.0, 0.5, 0.999):  # x = 2: q = 0 and p = 0.5, accepted; the bonus from p_2 is token 1
        check_tokens(submission.verify_draft(q, ids([2]), p, t([u]), 0.3), [2, 1])
    q = t([[0.0, 0.5, 0.5]])
    p = t([[0.0, 0.25, 0.75], [0.0, 1.0, 0.0]])
    # x = 0: q = 0 and p = 0, rejected even with u = 0; the residual max(0, p - q) = [0, 0, 0.25]
    check_tokens(submission.verify_draft(q, ids([0]), p, t([0.0]), 0.1), [2])


def test_target_equals_draft(submission, seed):
    """p_i = q_i: every drafted token is accepted (ratio 1 > u_i), and the bonus token comes from p_{k+1}."""
    rng = np.random.default_rng(seed)
    q = distributions(rng, 5, 12)
    p = torch.cat([q, distributions(rng, 1, 12)])
    x = ids([int(rng.choice(12, p=as64(q)[i] / as64(q)[i].sum())) for i in range(5)])
    for u in (0.0, 0.5, 0.999):
        us = 0.5
        if np.abs(np.cumsum(as64(p)[5]) - us).min() < MARGIN:
            us = 0.5 + 3 * MARGIN
        check_tokens(
            submission.verify_draft(q, x, p, t([u] * 5), us),
            [*x.tolist(), draw(as64(p)[5], us)],
            {INVERTED: rule(as64(q), x.numpy(), as64(p), np.full(5, u), us, "inverted")},
        )


def test_empty_residual_falls_back_to_p(submission):
    """p_i = q_i and the drafted token has p = q = 0: it is rejected, max(0, p - q) is all zero, and the
    replacement is sampled from p_i itself."""
    q = t([[0.5, 0.0, 0.25, 0.25]])
    p = t([[0.5, 0.0, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])
    for us, want in [(0.1, 0), (0.6, 2), (0.9, 3)]:
        check_tokens(submission.verify_draft(q, ids([1]), p, t([0.0]), us), [want])


def test_ties_at_the_boundaries(submission):
    """Numbers exact in binary: u_i equal to the ratio rejects; u equal to a running total moves on."""
    q = t([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
    p = t([[0.25, 0.25, 0.5], [0.125, 0.375, 0.5], [0.5, 0.25, 0.25]])
    cases = [
        # x_1 = 0: ratio 0.5 and u_1 = 0.5 rejects; the residual [0, 0, 0.25] gives token 2
        (ids([0, 1]), t([0.5, 0.0]), 0.0, [2]),
        # x_2 = 0: ratio 0.25 and u_2 = 0.25 rejects; the residual [0, 0.125, 0.25] / 0.375 gives 1
        (ids([0, 0]), t([0.25, 0.25]), 0.0, [0, 1]),
        # both accepted; the bonus from p_3, running totals 0.5, 0.75, 1: a u on a total moves on
        (ids([1, 1]), t([0.0, 0.0]), 0.5, [1, 1, 1]),
        (ids([1, 1]), t([0.0, 0.0]), 0.75, [1, 1, 2]),
        (ids([1, 1]), t([0.0, 0.0]), 0.4999, [1, 1, 0]),
    ]
    for x, u, us, want in cases:
        expected, mistaken = oracle_and_mistakes(q, x, p, u, us)
        expect(expected == want, "the oracle disagrees with the case")
        got = submission.verify_draft(q, x, p, u, us)
        check_tokens(got, want, mistaken, hint=TIE if len(want) == 3 else "")


def test_sample_index_edges(submission):
    """sample_index: leading and inner zeros are skipped, ties move to the next index, and a u past the
    last running total gives the last token with a non-zero probability."""
    cases = [
        ([0.0, 0.0, 1.0], 0.0, 2),
        ([0.0, 0.5, 0.0, 0.5, 0.0], 0.5, 3),
        ([0.125, 0.375, 0.5], 0.125, 1),
        ([0.125, 0.375, 0.5], 0.5, 2),
        ([1.0], 0.999, 0),
    ]
    for probs, u, want in cases:
        got = submission.sample_index(t(probs), u)
        expect(type(got) is int, "sample_index must return a Python int")
        expect(got == want, "sample_index picked the wrong index at a boundary", hint=TIE)
    short = torch.tensor([0.3, 0.3, 0.39999, 0.0], dtype=torch.float32)  # totals end at 0.99999
    expect(
        submission.sample_index(short, 0.999995) == 2,
        "u past the last running total must give the last token with a non-zero probability (here index 2)",
    )


def test_totals_end_below_one(submission):
    """A bonus-token distribution whose float32 running totals end below 1: u past them gives its last
    non-zero token."""
    q = t([[1.0, 0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.69999, 0.0]], dtype=torch.float32)
    check_tokens(submission.verify_draft(q, ids([0]), p, t([0.5]), 0.999995), [0, 1])


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(torch.float16, id="float16"),
        pytest.param(torch.bfloat16, id="bfloat16"),
        pytest.param(torch.float64, id="float64"),
    ],
)
def test_precision(submission, seed, dtype):
    """Probabilities in float16, bfloat16 and float64, uniforms 1e-4 from the boundaries: the answer of
    the float64 rule on those values."""
    rng = np.random.default_rng(seed + 1000)
    for case in range(8):
        q, x, p, u, us = random_case(rng, 1 + case % 4, 48, dtype=dtype, near=1e-4)
        want, mistaken = oracle_and_mistakes(q, x, p, u, us)
        got = submission.verify_draft(q, x, p, u, us)
        hint = ""
        if got != want and dtype != torch.float64:
            # the same numbers in float64: right there means the arithmetic was done in the inputs' dtype
            if submission.verify_draft(q.double(), x, p.double(), u.double(), us) == want:
                hint, mistaken = LOW_PRECISION, {}
        check_tokens(got, want, mistaken, hint=hint)


# --------------------------------------------------------------------------- exact distributions

U_GRID = 4  # every acceptance ratio of these cases is a multiple of 1/4
GRID = 8  # every running total of these cases is a multiple of 1/8

CASES = {
    # a drafted token the target never emits (p_1(3) = 0), a residual on two tokens
    "rejects-to-two-tokens": (
        [F(1, 4), F(1, 4), F(1, 4), F(1, 8), F(1, 8)],
        [F(1, 2), F(1, 16), F(1, 16), F(0), F(3, 8)],
        [F(0), F(1, 2), F(1, 4), F(1, 8), F(1, 8)],
    ),
    # the draft never proposes tokens 2 and 3: they come only from the residual
    "draft-misses-tokens": (
        [F(1, 2), F(1, 2), F(0), F(0)],
        [F(1, 4), F(1, 4), F(1, 4), F(1, 4)],
        [F(1), F(0), F(0), F(0)],
    ),
    # a target that prefers the tokens the draft rarely proposes
    "reversed": (
        [F(1, 8), F(1, 8), F(1, 4), F(1, 2)],
        [F(1, 2), F(1, 4), F(1, 8), F(1, 8)],
        [F(1, 4), F(1, 4), F(1, 4), F(1, 4)],
    ),
}


def exact_outputs(q1, p1, p2):
    residual_ = [max(F(0), a - b) for a, b in zip(p1, q1, strict=True)]
    total = sum(residual_)
    residual_ = [r / total for r in residual_] if total > 0 else list(p1)
    out = {}
    for x, qx in enumerate(q1):
        if qx == 0:
            continue
        accept = min(F(1), p1[x] / qx)
        for b, pb in enumerate(p2):
            out[(x, b)] = out.get((x, b), F(0)) + qx * accept * pb
        for j, rj in enumerate(residual_):
            out[(j,)] = out.get((j,), F(0)) + qx * (1 - accept) * rj
    return {key: value for key, value in out.items() if value > 0}


@pytest.mark.parametrize("case", [pytest.param(name, id=name) for name in CASES])
def test_output_distribution_is_exact(submission, case):
    """Integrated exactly over the uniforms (a grid of midpoints on dyadic numbers), the first output
    token follows p_1 and every output has the probability the rule gives it."""
    q1, p1, p2 = CASES[case]
    q, p = t([[float(v) for v in q1]]), t([[float(v) for v in p1], [float(v) for v in p2]])
    acceptance_grid = [(i + 0.5) / U_GRID for i in range(U_GRID)]
    sample_grid = [(j + 0.5) / GRID for j in range(GRID)]
    got = {}
    for x, qx in enumerate(q1):
        if qx == 0:
            continue
        for u1 in acceptance_grid:
            for us in sample_grid:
                key = tuple(submission.verify_draft(q, ids([x]), p, t([u1]), us))
                got[key] = got.get(key, F(0)) + qx / (U_GRID * GRID)
    first = [sum((w for key, w in got.items() if key[0] == j), F(0)) for j in range(len(p1))]
    expect(first == p1, "the first output token does not follow p_1 exactly")
    expect(got == exact_outputs(q1, p1, p2), "the probabilities of the outputs differ from the rule's")


# --------------------------------------------------------------------------- inputs


def test_inputs_unchanged(submission, seed):
    """verify_draft and sample_index leave every tensor they are given as it was."""
    rng = np.random.default_rng(seed + 7)
    for _ in range(3):
        q, x, p, u, us = random_case(rng, 4, 16)
        call_unchanged(
            submission.verify_draft,
            q,
            x,
            p,
            u,
            us,
            names=("draft_probs", "draft_tokens", "target_probs", "uniforms", "sample_uniform"),
            what="verify_draft",
            hint="compute new tensors (torch.clamp(p - q, min=0)), never p.sub_(q) or p -= q",
        )
    call_unchanged(submission.sample_index, p[0], 0.5, names=("probs", "u"), what="sample_index")
