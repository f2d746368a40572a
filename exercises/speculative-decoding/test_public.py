"""Public tests: the lesson's examples, the tie conventions, and the exact output distribution of
one small case.

Run them with `grader test speculative-decoding speculative_decoding.py`.
"""

from fractions import Fraction as F

import torch

from grader.testing import assert_close, expect

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


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def ids(tokens):
    return torch.tensor(tokens, dtype=torch.int64)


def check_tokens(got, want, misconceptions=None):
    expect(
        isinstance(got, list) and all(type(v) is int for v in got),
        "verify_draft must return a Python list of ints",
        detail=f"got {type(got).__name__}",
    )
    assert_close(got, want, what="the returned tokens", misconceptions=misconceptions)


def test_sample_index(submission):
    """Inverse CDF in index order: the first index whose running total is > u; zero-probability tokens
    are never returned."""
    probs = t([0.25, 0.25, 0.5])  # running totals 0.25, 0.5, 1
    for u, want in [(0.0, 0), (0.1, 0), (0.25, 1), (0.4999, 1), (0.5, 2), (0.99, 2)]:
        got = submission.sample_index(probs, u)
        expect(type(got) is int, "sample_index must return a Python int", detail=f"got {type(got).__name__}")
        expect(
            got == want,
            f"sample_index([0.25, 0.25, 0.5], {u}) should be {want}",
            detail=f"got {got}",
            hint=TIE,
        )
    gaps = t([0.0, 0.5, 0.0, 0.5])  # running totals 0, 0.5, 0.5, 1
    for u, want in [(0.0, 1), (0.5, 3), (0.75, 3)]:
        got = submission.sample_index(gaps, u)
        expect(
            got == want,
            f"sample_index([0, 0.5, 0, 0.5], {u}) should be {want}",
            detail=f"got {got}",
            hint=TIE,
        )


# The lesson's worked example: k = 3 drafted tokens over a vocabulary of 4.
Q = t([[0.1, 0.6, 0.2, 0.1], [0.5, 0.2, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
X = ids([1, 0, 3])
P = t([[0.1, 0.7, 0.1, 0.1], [0.2, 0.1, 0.3, 0.4], [0.1, 0.1, 0.1, 0.7], [0.4, 0.3, 0.2, 0.1]])
U = t([0.5, 0.55, 0.3])
U_SAMPLE = 0.22


def test_worked_example(submission):
    """x_1 = 1 is accepted (ratio 7/6), x_2 = 0 is rejected (0.55 >= 0.4), the residual gives token 2."""
    check_tokens(
        submission.verify_draft(Q, X, P, U, U_SAMPLE),
        [1, 2],
        misconceptions={
            INVERTED: [1],
            Q_OVER_P: [1, 0, 3, 0],
            FROM_P: [1, 1],
            UNNORMALISED: [1, 3],
            COUNTED: [1, 0, 3],
        },
    )


def test_all_accepted_bonus_token(submission):
    """Both drafts accepted (ratios 1 and 1.2): the output ends with a bonus token sampled from p_3."""
    q = t([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    p = t([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])
    check_tokens(
        submission.verify_draft(q, ids([0, 1]), p, t([0.99, 0.7]), 0.5),
        [0, 1, 1],
        misconceptions={NO_BONUS: [0, 1], INVERTED: [1]},
    )


def test_no_draft(submission):
    """k = 0: the output is one token sampled from p_1 (running totals 0.1, 0.3, 1; u = 0.25 gives 1)."""
    empty = torch.zeros(0, 3)
    check_tokens(
        submission.verify_draft(empty, ids([]), t([[0.1, 0.2, 0.7]]), torch.zeros(0), 0.25),
        [1],
    )


def test_acceptance_is_strict(submission):
    """p(x) / q(x) = 0.25 / 0.5 = 0.5 exactly: u = 0.4999 accepts, u = 0.75 and u = 0.5 reject."""
    q = t([[0.5, 0.5]])
    p = t([[0.25, 0.75], [1.0, 0.0]])
    # accepted: the bonus token from p_2 = [1, 0] is token 0
    check_tokens(
        submission.verify_draft(q, ids([0]), p, t([0.4999]), 0.3), [0, 0], misconceptions={INVERTED: [1]}
    )
    # rejected: the residual max(0, p - q) = [0, 0.25], normalised [0, 1], gives token 1
    check_tokens(
        submission.verify_draft(q, ids([0]), p, t([0.75]), 0.3), [1], misconceptions={Q_OVER_P: [0, 0]}
    )
    check_tokens(
        submission.verify_draft(q, ids([0]), p, t([0.5]), 0.3), [1], misconceptions={NON_STRICT: [0, 0]}
    )


# --------------------------------------------------------------------------- the exact distribution

Q1 = [F(1, 2), F(1, 4), F(1, 8), F(1, 8)]
P1 = [F(1, 4), F(1, 4), F(1, 4), F(1, 4)]
P2 = [F(1, 8), F(3, 8), F(1, 4), F(1, 4)]
U_GRID = 4  # every acceptance ratio here is a multiple of 1/4
GRID = 8  # every running total here is a multiple of 1/8


def exact_outputs(q1, p1, p2):
    """The probability of every output of one drafted token, from the rule, in exact fractions."""
    residual = [max(F(0), a - b) for a, b in zip(p1, q1, strict=True)]
    total = sum(residual)
    residual = [r / total for r in residual] if total > 0 else list(p1)
    out = {}
    for x, qx in enumerate(q1):
        if qx == 0:
            continue
        accept = min(F(1), p1[x] / qx)
        for b, pb in enumerate(p2):
            out[(x, b)] = out.get((x, b), F(0)) + qx * accept * pb
        for j, rj in enumerate(residual):
            out[(j,)] = out.get((j,), F(0)) + qx * (1 - accept) * rj
    return {key: value for key, value in out.items() if value > 0}


def measured_outputs(submission, q1, p1, p2):
    """Draft every token x with q(x) > 0, run the submission on a grid of midpoints, 4 for u_1 and 8
    for sample_uniform, and weight each output by q(x) / 32: exact for these dyadic numbers."""
    q, p = t([[float(v) for v in q1]]), t([[float(v) for v in p1], [float(v) for v in p2]])
    acceptance_grid = [(i + 0.5) / U_GRID for i in range(U_GRID)]
    sample_grid = [(j + 0.5) / GRID for j in range(GRID)]
    out = {}
    for x, qx in enumerate(q1):
        if qx == 0:
            continue
        for u1 in acceptance_grid:
            for us in sample_grid:
                key = tuple(submission.verify_draft(q, ids([x]), p, t([u1]), us))
                out[key] = out.get(key, F(0)) + qx / (U_GRID * GRID)
    return out


def test_output_distribution_is_exact(submission):
    """Integrated over the uniforms, the first output token follows p_1 exactly, and every output has
    the probability the rule gives it (q = [1/2, 1/4, 1/8, 1/8], p_1 uniform over 4 tokens)."""
    got = measured_outputs(submission, Q1, P1, P2)
    first = [sum((w for key, w in got.items() if key[0] == j), F(0)) for j in range(len(P1))]
    expect(
        first == P1,
        "the first output token does not follow p_1 = [1/4, 1/4, 1/4, 1/4]",
        detail=f"measured {[str(f) for f in first]}",
    )
    want = exact_outputs(Q1, P1, P2)
    expect(
        got == want,
        "the probabilities of the outputs differ from the rule's",
        detail=f"measured {sorted((k, str(v)) for k, v in got.items())}; "
        f"expected {sorted((k, str(v)) for k, v in want.items())}",
    )
