"""Hidden tests of Beam search: random bigram tables against an independent float64 oracle, exact
ties across beams and tokens, the EOS rank rule, the capacity of the finished set, early stopping,
length penalties, float32 tables, and the table left as it was."""

import math

import numpy as np
import pytest
import torch

from grader.testing import assert_close, call_unchanged, expect, shrink

NO_NORM = (
    "ranked finished hypotheses by their raw sum of log-probs? Divide each sum by "
    "length ** length_penalty (length = the new tokens, EOS included) before comparing them"
)
EOS_LIVE = (
    "kept beams that emitted EOS in the live set? A beam that picks EOS leaves the search: it goes to "
    "the finished set and the live set is refilled with num_beams non-EOS candidates"
)
PER_BEAM = (
    "expanded each beam on its own? Rank all num_beams x V candidates (beam, token) together and keep "
    "the best num_beams of them: a strong beam may supply several children, a weak one none"
)
FIRST_DONE = (
    "stopped at the first finished hypothesis? With early_stopping=True the search stops once "
    "num_beams hypotheses are finished"
)
TOKEN_FIRST = (
    "broke ties between equal scores by token id first? Equal scores go to the lower beam index, "
    "then the lower token id (a stable sort of the candidates listed beam by beam)"
)
ATOL = 1e-9  # the lesson asks for float64 arithmetic: scores agree to rounding


def oracle(
    table,
    prompt_last_token,
    num_beams,
    max_new_tokens,
    eos_id,
    length_penalty=1.0,
    early_stopping=True,
    *,
    normalise=True,
    eos_aside=True,
    joint=True,
    stop_at=None,
    tie="beam",
):
    """An independent, tensor-based beam search in float64 (and the mistakes, by flag).

    Candidates are ranked by torch.sort(stable=True) of the flattened (beam, token) scores."""
    lp = table.detach().to(torch.float64)
    vocab = lp.shape[0]
    stop_at = num_beams if stop_at is None else stop_at
    seqs = [[]]
    sums = torch.zeros(1, dtype=torch.float64)
    last = torch.tensor([int(prompt_last_token)])
    hyps = []  # [score, tokens]

    def add(tokens, total):
        n = len(tokens)
        score = total / (n**length_penalty) if normalise else total
        if len(hyps) < num_beams or score > min(h[0] for h in hyps):
            hyps.append([score, tokens])
            if len(hyps) > num_beams:
                worst = min(h[0] for h in hyps)
                del hyps[[h[0] for h in hyps].index(worst)]

    stopped = False
    for _ in range(max_new_tokens):
        scores = sums[:, None] + lp[last]  # (beams, V)
        if tie == "token":
            flat = scores.T.reshape(-1)  # token-major order
            order = torch.sort(flat, descending=True, stable=True).indices.tolist()
            cands = [(i % len(seqs), i // len(seqs)) for i in order]
        elif joint:
            flat = scores.reshape(-1)
            order = torch.sort(flat, descending=True, stable=True).indices.tolist()
            cands = [(i // vocab, i % vocab) for i in order]
        else:  # each beam expanded alone: its best tokens, beams kept in order
            cands = []
            per = num_beams if len(seqs) == 1 else 1
            for b in range(len(seqs)):
                row = torch.sort(scores[b], descending=True, stable=True).indices.tolist()
                cands += [(b, v) for v in row[: per + 1]]
        new_seqs, new_sums, new_last = [], [], []
        for rank, (b, v) in enumerate(cands):
            total = float(scores[b, v])
            if v == eos_id and eos_aside:
                if rank < num_beams or not joint:
                    add(seqs[b] + [v], total)
                continue
            new_seqs.append(seqs[b] + [v])
            new_sums.append(total)
            new_last.append(v)
            if len(new_seqs) == num_beams:
                break
        seqs, sums, last = new_seqs, torch.tensor(new_sums, dtype=torch.float64), torch.tensor(new_last)
        if early_stopping and len(hyps) >= stop_at:
            stopped = True
            break
    if not stopped:
        for tokens, total in zip(seqs, sums.tolist(), strict=True):
            add(tokens, total)
    ranked = sorted(hyps, key=lambda h: h[0], reverse=True)
    return [[list(t), float(s)] for s, t in ranked]


def mistakes(*args, **kwargs):
    return {
        NO_NORM: oracle(*args, **kwargs, normalise=False),
        EOS_LIVE: oracle(*args, **kwargs, eos_aside=False),
        PER_BEAM: oracle(*args, **kwargs, joint=False),
        FIRST_DONE: oracle(*args, **kwargs, stop_at=1),
        TOKEN_FIRST: oracle(*args, **kwargs, tie="token"),
    }


def normalised(out):
    """The submission's result as [[tokens], score] lists, or a failure in fixed words."""
    ok = isinstance(out, (list, tuple)) and all(
        isinstance(h, (list, tuple)) and len(h) == 2 and isinstance(h[0], (list, tuple)) for h in out
    )
    expect(ok, "beam_search must return a list of (tokens, score) pairs, tokens a list of ints")
    try:
        return [[[int(t) for t in toks], float(score)] for toks, score in out]
    except (TypeError, ValueError):
        expect(False, "beam_search must return a list of (tokens, score) pairs: ints and a float")


def check(submission, table, *args, **kwargs):
    got = normalised(submission.beam_search(table, *args, **kwargs))
    want = oracle(table, *args, **kwargs)
    assert_close(
        got,
        want,
        what="the finished hypotheses",
        rtol=0,
        atol=ATOL,
        misconceptions={k: v for k, v in mistakes(table, *args, **kwargs).items() if v != want},
    )


def random_table(rng, vocab, eos_id, eos_bias=0.0):
    """Log-softmax rows of random logits; eos_bias makes EOS likelier (more finished hypotheses)."""
    logits = torch.from_numpy(rng.standard_normal((vocab, vocab)) * 2.0)
    logits[:, eos_id] += eos_bias
    return torch.log_softmax(logits, dim=-1).to(torch.float32)


@pytest.mark.parametrize(
    "vocab, num_beams, max_new_tokens, length_penalty, early_stopping, eos_bias",
    [
        pytest.param(6, 2, 5, 1.0, True, 0.5, id="small-early-stop"),
        pytest.param(12, 4, 8, 1.0, True, 1.0, id="four-beams"),
        pytest.param(10, 3, 7, 2.0, False, 0.5, id="penalty-2-no-early-stop"),
        pytest.param(9, 3, 6, 0.0, True, 1.5, id="penalty-0-raw-sums"),
        pytest.param(8, 5, 6, -0.5, False, 1.0, id="negative-penalty"),
    ],
)
def test_random_tables(
    submission, rng, vocab, num_beams, max_new_tokens, length_penalty, early_stopping, eos_bias
):
    """Random bigram tables, against an independent float64 beam search."""
    eos = int(rng.integers(vocab))
    table = random_table(rng, vocab, eos, eos_bias)
    prompt = int(rng.integers(vocab))
    check(submission, table, prompt, num_beams, max_new_tokens, eos, length_penalty, early_stopping)


def test_random_shrunk(submission, seed):
    """Many random searches; a failure is reported on the smallest table and beam that still fail."""

    def case(sizes, seed):
        g = np.random.default_rng(seed)
        vocab = sizes["vocab"]
        beams = min(sizes["beams"], vocab - 1)
        eos = int(g.integers(vocab))
        table = random_table(g, vocab, eos, 1.0)
        check(submission, table, int(g.integers(vocab)), beams, sizes["steps"], eos, 1.0, bool(seed % 2))

    for k in range(4):
        shrink(
            case,
            {"vocab": 10, "beams": 4, "steps": 7},
            seed=seed * 10 + k,
            minimum={"vocab": 2, "beams": 1, "steps": 1},
        )


def test_ties_across_beams(submission):
    """Two candidates from different beams with exactly the same score: the lower beam index wins."""
    # step 1 from token 1: beams [2] (-0.5) and [3] (-1.0); EOS (0) at rank 2 is discarded.
    # step 2: [2, 3] and [3, 2] both total -1.5; [2, 1] -1.5 as well: beam 0 first, then token id.
    t = torch.full((5, 5), -8.0, dtype=torch.float64)
    t[1] = torch.tensor([-3.0, -6.0, -0.5, -1.0, -6.0])
    t[2] = torch.tensor([-4.0, -1.0, -6.0, -1.0, -2.0])
    t[3] = torch.tensor([-4.0, -6.0, -0.5, -6.0, -2.0])
    t[4] = torch.tensor([-0.25, -6.0, -6.0, -6.0, -6.0])
    check(submission, t, 1, 2, 3, 0, 1.0, False)


def test_ties_within_a_beam(submission):
    """Equal log-probs for several tokens of one beam: the lower token id is kept."""
    t = torch.tensor(
        [
            [-5.0, -5.0, -5.0, -5.0],
            [-3.0, -0.5, -0.5, -0.5],
            [-0.5, -1.0, -1.0, -1.0],
            [-0.5, -1.0, -1.0, -1.0],
        ],
        dtype=torch.float64,
    )
    check(submission, t, 1, 2, 3, 0, 1.0, False)


def test_eos_rank_rule(submission):
    """An EOS candidate ranked at num_beams or worse is discarded, not finished."""
    # step 2, two beams: EOS from beam 0 (rank 0) finishes, beam 0's token 2 is live (rank 1), EOS
    # from beam 1 at rank 2 is discarded, and the walk goes on to the second live beam.
    t = torch.tensor(
        [[-9.0] * 4, [-5.0, -9.0, -0.1, -0.2], [-0.05, -9.0, -0.1, -3.0], [-0.1, -9.0, -2.0, -2.5]],
        dtype=torch.float64,
    )
    out = normalised(submission.beam_search(t, 1, 2, 4, 0, 1.0, True))
    expect(
        all(h[0] != [3, 0] for h in out),
        "an EOS candidate outside the top num_beams of its step was kept as a finished hypothesis",
        hint="an EOS candidate finishes only when its rank among the step's candidates is below num_beams",
    )
    check(submission, t, 1, 2, 4, 0, 1.0, True)


def test_finished_set_capacity(submission, rng):
    """More than num_beams hypotheses finish: only the num_beams best are kept (a tie does not evict)."""
    table = random_table(rng, 7, 0, 2.5)
    for beams in (1, 2, 3):
        check(submission, table, 3, beams, 8, 0, 1.0, False)


def test_a_tie_does_not_evict(submission):
    """A hypothesis that only ties the worst of a full finished set is not added."""
    # one beam, one step from token 1: EOS [0] (-0.5) finishes at rank 0 and [1] (-0.5) stays live;
    # when the steps run out, [1] is offered to the full set and ties [0]: [0] stays
    t = torch.tensor([[-1.0, -1.0, -1.0], [-0.5, -0.5, -2.0], [-1.0, -1.0, -1.0]], dtype=torch.float64)
    out = normalised(submission.beam_search(t, 1, 1, 1, 0, 1.0, False))
    expect(
        out == [[[0], -0.5]],
        "a hypothesis that only tied the worst of a full finished set replaced it",
        hint="a hypothesis joins a full finished set only with a score strictly above its worst (>, not >=)",
    )


def test_one_beam_is_greedy(submission, rng):
    """num_beams = 1 is greedy decoding: the best token at every step."""
    table = random_table(rng, 8, 5, 0.0)
    check(submission, table, 2, 1, 6, 5, 1.0, True)


def test_one_step(submission, rng):
    """max_new_tokens = 1: one expansion, then the live beams are finalised."""
    table = random_table(rng, 6, 0, 0.5)
    check(submission, table, 4, 3, 1, 0, 1.0, True)


def test_prompt_is_eos(submission, rng):
    """The prompt's last token may be EOS itself: its row is used like any other."""
    table = random_table(rng, 6, 2, 0.0)
    check(submission, table, 2, 2, 4, 2, 1.0, True)


def test_scores_are_normalised(submission, rng):
    """Every returned score equals the sum of its tokens' log-probs / length ** length_penalty."""
    table = random_table(rng, 7, 1, 1.0)
    prompt, penalty = 3, 1.5
    out = normalised(submission.beam_search(table, prompt, 3, 6, 1, penalty, False))
    lp = table.double()
    ok = len(out) > 0
    for toks, score in out:
        prev, total = prompt, 0.0
        for t in toks:
            total, prev = total + float(lp[prev, t]), t
        ok = ok and len(toks) > 0 and math.isclose(score, total / len(toks) ** penalty, abs_tol=1e-9)
    expect(
        ok,
        "a returned score is not the sum of its tokens' log-probs / length ** length_penalty",
        hint=NO_NORM,
    )


def test_table_unchanged(submission, rng):
    """beam_search leaves the table as it was."""
    table = random_table(rng, 6, 0, 1.0)
    got = call_unchanged(
        submission.beam_search,
        table,
        1,
        2,
        5,
        0,
        names=("logprobs", "prompt_last_token", "num_beams", "max_new_tokens", "eos_id"),
        what="beam_search",
        hint="read the table; never write into it (no in-place masking of EOS rows or columns)",
    )
    # only the result's type here: the values are checked in test_random_tables (small-early-stop)
    normalised(got)
