"""Public tests: small cases you can check by hand.

Run them with `grader test sliding-window-attention sliding_window.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, compare, expect

T, F = True, False
PLUS_ONE = "window off by one? query i sees the window keys i - w < j <= i (w keys), not i - w <= j (w + 1)"
NO_SELF = "the query's own key is missing? the window i - w < j <= i includes j = i"
TOP_LEFT = (
    "aligned top-left where bottom-right was asked? with bottom_right, query i is position i + n_k - n_q"
)
EARLY_KEYS = (
    "the keys before the first query were left out? with bottom_right, query i at position p sees "
    "the keys p - w < j <= p, cached keys before the first new query included"
)
NAN_OUTPUT = (
    "every query sees at least its own key, so no output can be NaN: a row with no allowed key "
    "(a window that leaves out j = i, or a padded row) was computed and kept"
)
NO_WINDOW = "the window was ignored? that is plain causal attention: query i sees only its w latest keys"
PREVIOUS_BLOCK = (
    "the keys before each block of queries were left out? a block also needs the w - 1 keys before "
    "its first query: attending inside the block only is chunked attention, not a sliding window"
)

# the worked example of README.md: with q = 0 every allowed key gets the same weight, so each
# output is the mean of the values in its window
V5 = torch.tensor([[4.0, 0.0], [0.0, 4.0], [2.0, 2.0], [6.0, 0.0], [0.0, 2.0]])


def window_means(v, lo_hi):
    """Rows of means of v over the given (lo, hi) ranges of keys, hi exclusive."""
    return torch.stack([v[lo:hi].mean(0) for lo, hi in lo_hi])


def masked_attention(q, k, v, mask):
    """Plain attention over the keys a bool (n_q, n_k) mask allows, in float64: fine for a few
    positions, and a way to test your function on small random inputs."""
    scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return (weights @ v.double()).to(q.dtype)


def band(n_q, n_k, window, shift, *, lo=None, hi=0):
    """Bool (n_q, n_k), True where p - lo <= j <= p + hi for query position p = i + shift; the
    default lo = window - 1 and hi = 0 give the sliding window p - window < j <= p."""
    lo = window - 1 if lo is None else lo
    p = torch.arange(n_q).unsqueeze(1) + shift
    j = torch.arange(n_k).unsqueeze(0)
    return (j >= p - lo) & (j <= p + hi)


def chunked(n_q, n_k, window, shift, block, by_position):
    """The window cut at the start of each block: blocks of `block` queries from query 0, or (with
    `by_position`) blocks of the positions m * block .. (m + 1) * block - 1."""
    p = torch.arange(n_q).unsqueeze(1) + shift
    first = (p // block) * block if by_position else ((p - shift) // block) * block + shift
    return band(n_q, n_k, window, shift) & (torch.arange(n_k).unsqueeze(0) >= first)


def matching(out, candidates):
    """The first candidate that out matches, else the first: for a mistake made in several ways."""
    for candidate in candidates:
        if compare(out, candidate) is None:
            return candidate
    return candidates[0]


def nan_hint(out):
    if isinstance(out, torch.Tensor) and out.is_floating_point() and bool(out.isnan().any()):
        return NAN_OUTPUT
    return ""


def test_window_mask_top_left_6x6(submission):
    """window_mask(6, 6, 3): the band of the lesson's picture, query i sees keys i - 2 .. i."""
    expected = torch.tensor(
        [
            [T, F, F, F, F, F],
            [T, T, F, F, F, F],
            [T, T, T, F, F, F],
            [F, T, T, T, F, F],
            [F, F, T, T, T, F],
            [F, F, F, T, T, T],
        ]
    )
    ones = torch.ones(6, 6, dtype=torch.bool)
    assert_close(
        submission.window_mask(6, 6, 3),
        expected,
        misconceptions={
            PLUS_ONE: ones.tril() & ones.triu(-3),
            NO_SELF: ones.tril(-1) & ones.triu(-3),
            NO_WINDOW: ones.tril(),
            "mask convention inverted? True must mean 'may attend'": ~expected,
        },
    )


def test_window_mask_both_alignments_2x5(submission):
    """window_mask(2, 5, 2): top-left queries are positions 0, 1; bottom-right ones are 3, 4."""
    top_left = torch.tensor([[T, F, F, F, F], [T, T, F, F, F]])
    bottom_right = torch.tensor([[F, F, T, T, F], [F, F, F, T, T]])
    assert_close(
        submission.window_mask(2, 5, 2),
        top_left,
        what="window_mask(2, 5, 2)",
        misconceptions={
            "aligned bottom-right? align defaults to 'top_left'": bottom_right,
            NO_SELF: torch.tensor([[F, F, F, F, F], [T, F, F, F, F]]),
        },
    )
    assert_close(
        submission.window_mask(2, 5, 2, align="bottom_right"),
        bottom_right,
        what="window_mask(2, 5, 2, align='bottom_right')",
        misconceptions={
            TOP_LEFT: top_left,
            PLUS_ONE: torch.tensor([[F, T, T, T, F], [F, F, T, T, T]]),
            NO_SELF: torch.tensor([[F, T, T, F, F], [F, F, T, T, F]]),
        },
    )


def test_worked_example(submission):
    """T = 5, w = 2, q = 0: every output is the mean of the values of its window (README)."""
    q, k = torch.zeros(5, 4), torch.randn(5, 4)
    expected = torch.tensor([[4.0, 0.0], [2.0, 2.0], [1.0, 3.0], [4.0, 1.0], [3.0, 1.0]])
    out = submission.sliding_window_attention(q, k, V5, 2)
    assert_close(
        out,
        expected,
        hint=nan_hint(out),
        misconceptions={
            PLUS_ONE: window_means(V5, [(0, 1), (0, 2), (0, 3), (1, 4), (2, 5)]),
            NO_WINDOW: window_means(V5, [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]),
        },
    )


def test_window_one_returns_v(submission):
    """w = 1: every query sees only its own key, whatever the scores: the output is v."""
    q, k, v = torch.randn(2, 6, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    out = submission.sliding_window_attention(q, k, v, 1)
    ones = torch.ones(6, 6, dtype=torch.bool)
    assert_close(
        out,
        v,
        hint=nan_hint(out),
        misconceptions={PLUS_ONE: masked_attention(q, k, v, ones.tril() & ones.triu(-1))},
    )


def test_window_longer_than_the_sequence(submission):
    """w = 10 over 5 positions: nothing is cut off, so this is causal attention (a running mean)."""
    q, k = torch.zeros(5, 4), torch.randn(5, 4)
    expected = window_means(V5, [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)])
    out = submission.sliding_window_attention(q, k, V5, 10)
    assert_close(out, expected, hint=nan_hint(out))


def test_bottom_right_decoding_step(submission):
    """One new query over 5 cached keys, w = 2, bottom-right: it is position 4 and sees keys 3, 4."""
    q, k = torch.zeros(1, 4), torch.randn(5, 4)
    assert_close(
        submission.sliding_window_attention(q, k, V5, 2, align="bottom_right"),
        torch.tensor([[3.0, 1.0]]),  # (v3 + v4) / 2
        misconceptions={
            TOP_LEFT: V5[:1],
            PLUS_ONE: window_means(V5, [(2, 5)]),
            NO_SELF: window_means(V5, [(2, 4)]),
            EARLY_KEYS: V5[4:],
        },
    )


def test_two_queries_bottom_right(submission):
    """Two new queries over 5 keys, w = 2: positions 3 and 4, the last two rows of the worked example."""
    q, k = torch.zeros(2, 4), torch.randn(5, 4)
    assert_close(
        submission.sliding_window_attention(q, k, V5, 2, align="bottom_right"),
        torch.tensor([[4.0, 1.0], [3.0, 1.0]]),
        misconceptions={
            TOP_LEFT: torch.tensor([[4.0, 0.0], [2.0, 2.0]]),
            PLUS_ONE: window_means(V5, [(1, 4), (2, 5)]),
            NO_SELF: window_means(V5, [(1, 3), (2, 4)]),
            EARLY_KEYS: window_means(V5, [(3, 4), (3, 5)]),
        },
    )


def test_scale_and_window_by_hand(submission):
    """d = 4, so the scale is 1/2: key 0 is outside the window, the others score 0 and ln 3 -> [1/4, 3/4]."""
    x = math.log(3) / 2  # q . k2 = 4 x = 2 ln 3, scaled by 1 / sqrt(4): ln 3
    q = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    k = torch.tensor([[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 0.0], [x, x, x, x]])
    v = torch.tensor([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0]])
    leaked = torch.softmax(torch.tensor([10.0, 0.0, math.log(3)]), 0) @ v
    assert_close(
        submission.sliding_window_attention(q, k, v, 2, align="bottom_right"),
        torch.tensor([[0.25, 0.75]]),
        misconceptions={
            "forgot the 1/sqrt(d) scale?": torch.tensor([[0.1, 0.9]]),
            "scaled by 1/d instead of 1/sqrt(d)?": torch.tensor(
                [[1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]]
            ),
            PLUS_ONE: leaked.unsqueeze(0),
            NO_SELF: (torch.softmax(torch.tensor([10.0, 0.0]), 0) @ v[:2]).unsqueeze(0),
            TOP_LEFT: v[:1],
            EARLY_KEYS: v[2:],
        },
    )


def test_shape_and_dtype(submission):
    """q (2, 3, 7, 8), k (2, 3, 9, 8), v (2, 3, 9, 5): the output is (2, 3, 7, 5), float32."""
    q, k, v = torch.randn(2, 3, 7, 8), torch.randn(2, 3, 9, 8), torch.randn(2, 3, 9, 5)
    out = submission.sliding_window_attention(q, k, v, 3, align="bottom_right")
    expect(isinstance(out, torch.Tensor), "sliding_window_attention must return a torch.Tensor")
    expect(
        tuple(out.shape) == (2, 3, 7, 5),
        f"the output has shape {tuple(out.shape)}; expected (2, 3, 7, 5) = (..., n_q, d_v)",
        hint="the output has one row per query and the width of v",
    )
    expect(
        out.dtype == torch.float32, f"the output has dtype {out.dtype}; expected torch.float32 (the input's)"
    )


@pytest.mark.parametrize(
    "window, align, n_q, n_k",
    [
        pytest.param(0, "top_left", 4, 4, id="window-0"),
        pytest.param(2, "bottom-right", 4, 4, id="align-with-a-dash"),
        pytest.param(2, "bottom_right", 5, 4, id="more-queries-than-keys"),
    ],
)
def test_invalid_arguments_raise_value_error(submission, window, align, n_q, n_k):
    """window < 1, an unknown align, and n_q > n_k raise ValueError."""
    q, k = torch.randn(n_q, 4), torch.randn(n_k, 4)
    with pytest.raises(ValueError):
        submission.sliding_window_attention(q, k, k, window, align=align)


@pytest.mark.parametrize(
    "n_q, n_k, align",
    [
        pytest.param(150, 150, "top_left", id="T150-top-left"),
        pytest.param(40, 150, "bottom_right", id="40-of-150-bottom-right"),
    ],
)
def test_more_than_one_block(submission, n_q, n_k, align):
    """150 keys, w = 20, random inputs: masked_attention with the window's mask, across blocks of 64, 128."""
    window, shift = 20, (n_k - n_q if align == "bottom_right" else 0)
    q, k, v = torch.randn(2, n_q, 16), torch.randn(2, n_k, 16), torch.randn(2, n_k, 16)
    out = submission.sliding_window_attention(q, k, v, window, align=align)
    chunks = [
        masked_attention(q, k, v, chunked(n_q, n_k, window, shift, block, by_position))
        for block in (64, 128, window)
        for by_position in (False, True)
    ]
    wrong = {
        PLUS_ONE: masked_attention(q, k, v, band(n_q, n_k, window, shift, lo=window)),
        NO_SELF: masked_attention(q, k, v, band(n_q, n_k, window, shift, lo=window, hi=-1)),
        NO_WINDOW: masked_attention(q, k, v, band(n_q, n_k, window, shift, lo=n_k)),
    }
    if shift:
        wrong[TOP_LEFT] = masked_attention(q, k, v, band(n_q, n_k, window, 0))
        # one block of all the queries, without the keys before the first of them
        wrong[EARLY_KEYS] = masked_attention(q, k, v, chunked(n_q, n_k, window, shift, n_q, False))
    wrong[PREVIOUS_BLOCK] = matching(out, chunks)
    assert_close(
        out,
        masked_attention(q, k, v, band(n_q, n_k, window, shift)),
        hint=nan_hint(out),
        misconceptions=wrong,
    )
