"""Public tests of Beam search: the worked example of README.md and small variations of it.

Run them with `grader test beam-search beam_search.py`.
"""

import torch

from grader.testing import assert_close, expect

NO_NORM = (
    "ranked finished hypotheses by their raw sum of log-probs? Divide each sum by "
    "length ** length_penalty (length = the new tokens, EOS included) before comparing them"
)
EOS_LIVE = (
    "kept beams that emitted EOS in the live set? A beam that picks EOS leaves the search: it goes to "
    "the finished set and the live set is refilled with num_beams non-EOS candidates"
)
FIRST_DONE = (
    "stopped at the first finished hypothesis? With early_stopping=True the search stops once "
    "num_beams hypotheses are finished"
)

# the worked example's table: token 0 is EOS; row 0 is never read after EOS
TABLE = torch.tensor(
    [
        [-9.0, -9.0, -9.0, -9.0],
        [-1.0, -1.5, -0.5, -2.0],
        [-0.25, -1.0, -2.0, -1.25],
        [-1.5, -0.5, -3.0, -2.0],
    ]
)


def as_lists(out):
    return [[[int(t) for t in toks], float(score)] for toks, score in out]


def test_worked_example(submission):
    """README's example: 2 beams from token 1, EOS = 0, early stopping: [2, 0] (-0.375) and [0] (-1.0)."""
    out = as_lists(submission.beam_search(TABLE, 1, 2, 3, 0))
    assert_close(
        out,
        [[[2, 0], -0.375], [[0], -1.0]],
        what="the finished hypotheses",
        rtol=0,
        atol=1e-9,
        misconceptions={
            NO_NORM: [[[2, 0], -0.75], [[0], -1.0]],
            EOS_LIVE: [[[2, 1, 2], -2.0 / 3], [[2, 1, 0], -2.5 / 3]],
            FIRST_DONE: [[[0], -1.0]],
        },
    )


def test_no_early_stopping(submission):
    """early_stopping=False runs all 3 steps; the live beam [2, 1, 2] (-2.0 / 3) then evicts [0]."""
    out = as_lists(submission.beam_search(TABLE, 1, 2, 3, 0, length_penalty=1.0, early_stopping=False))
    assert_close(
        out,
        [[[2, 0], -0.375], [[2, 1, 2], -2.0 / 3]],
        what="the finished hypotheses",
        rtol=0,
        atol=1e-9,
        misconceptions={NO_NORM: [[[2, 0], -0.75], [[0], -1.0]]},
    )


def test_length_penalty(submission):
    """length_penalty = 0 ranks raw sums; 2 divides by length squared."""
    out = as_lists(submission.beam_search(TABLE, 1, 2, 3, 0, length_penalty=0.0))
    assert_close(
        out, [[[2, 0], -0.75], [[0], -1.0]], what="the result with length_penalty=0", rtol=0, atol=1e-9
    )
    out = as_lists(submission.beam_search(TABLE, 1, 2, 3, 0, length_penalty=2.0, early_stopping=False))
    assert_close(
        out,
        [[[2, 0], -0.1875], [[2, 1, 2], -2.0 / 9]],
        what="the result with length_penalty=2",
        rtol=0,
        atol=1e-9,
    )


def test_one_beam_is_greedy(submission):
    """num_beams = 1: the best token at every step, [2, 0] here."""
    out = as_lists(submission.beam_search(TABLE, 1, 1, 3, 0))
    assert_close(out, [[[2, 0], -0.375]], what="the greedy result", rtol=0, atol=1e-9)


def test_longer_search(submission):
    """From token 3, 2 beams, 4 steps, no early stopping: [1, 2, 0] then [1, 2, 1, 2]."""
    out = as_lists(submission.beam_search(TABLE, 3, 2, 4, 0, 1.0, False))
    assert_close(
        out, [[[1, 2, 0], -1.25 / 3], [[1, 2, 1, 2], -2.5 / 4]], what="the result", rtol=0, atol=1e-9
    )


def test_result_types(submission):
    """A list of (tokens, score): tokens a list of ints, score a Python float."""
    out = submission.beam_search(TABLE, 1, 2, 3, 0)
    expect(
        isinstance(out, list) and len(out) > 0, "beam_search must return a non-empty list", detail=repr(out)
    )
    toks, score = out[0]
    expect(isinstance(toks, list) and all(isinstance(t, int) for t in toks), "tokens must be a list of ints")
    expect(isinstance(score, float), "a score must be a Python float", detail=repr(type(score)))
