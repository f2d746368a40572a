"""Public tests: small cases you can check by hand.

Run them with `grader test grouped-query-attention gqa.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

TILED = (
    "query heads matched to kv heads by h % n_kv_heads (the stack tiled, as x.repeat does)? Query head h "
    "reads kv head h // (n_heads // n_kv_heads): adjacent query heads share one kv head"
)
TILED_REPEAT_KV = (
    "repeat_kv tiled the stack (as x.repeat does)? Head h of the result is head h // n_rep of x: the "
    "copies of one kv head are adjacent (repeat_interleave on dim 1)"
)
TOP_LEFT = (
    "causal mask aligned top-left? The queries are the last T_q positions: query i may attend the keys "
    "j <= i + (T_k - T_q)"
)
MODEL_SCALE = "scaled by 1/sqrt(n_heads * d)? The scale is 1/sqrt(d), d = the size of one head (q.shape[-1])"
NO_MASK = "causal mask ignored? With causal=True query i may attend only the keys j <= i + (T_k - T_q)"
MASK_WHEN_NOT_CAUSAL = "applied a causal mask though causal=False? Then every query attends every key"
FOLDED_ROWS = (
    "causal mask built over the g * T_q folded query rows? It depends on the query's position only "
    "(row % T_q): build it for (T_q, T_k) and broadcast it over the heads of the group"
)


def test_repeat_kv_by_hand(submission):
    """Two kv heads A = 10 and B = 20, n_rep = 3: the heads become A A A B B B."""
    x = torch.tensor([10.0, 20.0]).reshape(1, 2, 1, 1)  # (B, n_kv_heads, T, d)
    expected = torch.tensor([10.0, 10.0, 10.0, 20.0, 20.0, 20.0]).reshape(1, 6, 1, 1)
    assert_close(
        submission.repeat_kv(x, 3),
        expected,
        what="repeat_kv(x, 3)",
        misconceptions={
            TILED_REPEAT_KV: torch.tensor([10.0, 20.0, 10.0, 20.0, 10.0, 20.0]).reshape(1, 6, 1, 1)
        },
    )


def test_repeat_kv_shape(submission):
    """x of shape (2, 3, 4, 5), n_rep = 2: shape (2, 6, 4, 5), head h is x's head h // 2; n_rep = 1: x."""
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    expected = torch.stack([x[:, 0], x[:, 0], x[:, 1], x[:, 1], x[:, 2], x[:, 2]], dim=1)
    assert_close(
        submission.repeat_kv(x, 2),
        expected,
        what="repeat_kv(x, 2)",
        misconceptions={TILED_REPEAT_KV: torch.cat([x, x], dim=1)},
    )
    assert_close(submission.repeat_kv(x, 1), x, what="repeat_kv(x, 1)")


def worked_example():
    """The lesson's example: 4 query heads, 2 kv heads, one decode step over 2 cached keys, d = 4."""
    x = math.log(3) / 2
    k = torch.tensor(
        [
            [[0.0, 0.0, 0.0, 0.0], [x, x, x, x]],  # kv head 0
            [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],  # kv head 1
        ]
    ).unsqueeze(0)  # (1, 2, 2, 4)
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[4.0, 0.0], [0.0, 4.0]]]).unsqueeze(0)  # (1, 2, 2, 2)
    ones, zeros = [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]
    q = torch.tensor([[ones], [zeros], [ones], [zeros]]).unsqueeze(0)  # (1, 4, 1, 4)
    return q, k, v


@pytest.mark.parametrize("causal", [pytest.param(True, id="causal"), pytest.param(False, id="not-causal")])
def test_worked_example(submission, causal):
    """Heads 0, 1 read kv head 0 and heads 2, 3 kv head 1: [0.25, 0.75], [0.5, 0.5], [2, 2], [2, 2]."""
    q, k, v = worked_example()

    def rows(*values):
        return torch.tensor(values).reshape(1, 4, 1, 2)

    r = 1 / (1 + math.sqrt(3))  # weights 1 : sqrt(3) when the score ln 3 is halved
    mistakes = {
        TILED: rows([0.25, 0.75], [2.0, 2.0], [0.25, 0.75], [2.0, 2.0]),
        MODEL_SCALE: rows([r, 1 - r], [0.5, 0.5], [2.0, 2.0], [2.0, 2.0]),
        "forgot the 1/sqrt(d) scale? Without it the scores are 0 and 2 ln 3": rows(
            [0.1, 0.9], [0.5, 0.5], [2.0, 2.0], [2.0, 2.0]
        ),
    }
    if causal:
        mistakes[TOP_LEFT] = rows([1.0, 0.0], [1.0, 0.0], [4.0, 0.0], [4.0, 0.0])
        mistakes[FOLDED_ROWS] = rows([1.0, 0.0], [0.5, 0.5], [4.0, 0.0], [2.0, 2.0])
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=causal),
        rows([0.25, 0.75], [0.5, 0.5], [2.0, 2.0], [2.0, 2.0]),
        misconceptions=mistakes,
    )


def test_chunk_over_cache_by_hand(submission):
    """MQA, 2 new queries over 4 keys, q = 0: query 0 averages v0..v2, query 1 all four values."""
    q = torch.zeros(1, 2, 2, 4)  # 2 query heads, 2 new positions
    k = torch.randn(1, 1, 4, 4)  # one kv head (MQA), 4 keys: any keys, since q = 0 scores them all 0
    v = torch.tensor([[3.0, 0.0], [0.0, 3.0], [6.0, 0.0], [0.0, 6.0]]).reshape(1, 1, 4, 2)

    def both_heads(row0, row1):
        return torch.tensor([row0, row1]).reshape(1, 1, 2, 2).expand(1, 2, 2, 2).contiguous()

    assert_close(
        submission.grouped_query_attention(q, k, v, causal=True),
        both_heads([3.0, 1.0], [2.25, 2.25]),
        misconceptions={
            TOP_LEFT: both_heads([3.0, 0.0], [1.5, 1.5]),
            NO_MASK: both_heads([2.25, 2.25], [2.25, 2.25]),
            FOLDED_ROWS: torch.tensor([[3.0, 0.0], [1.5, 1.5], [3.0, 1.0], [2.25, 2.25]]).reshape(1, 2, 2, 2),
        },
    )
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=False),
        both_heads([2.25, 2.25], [2.25, 2.25]),
        what="the output with causal=False",
        misconceptions={MASK_WHEN_NOT_CAUSAL: both_heads([3.0, 1.0], [2.25, 2.25])},
    )


def test_decode_step_sees_the_whole_cache(submission):
    """One new query (T_q = 1) over 5 keys, q = 0: with causal=True it still averages all five values."""
    q = torch.zeros(1, 4, 1, 8)
    k = torch.randn(1, 2, 5, 8)
    v = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(1, 2, 5, 3)
    means = v.mean(dim=2, keepdim=True)  # (1, 2, 1, 3)
    expected = means[:, [0, 0, 1, 1]]
    # a mask over the folded rows (g = 2 heads x 1 position) hides key 4 from heads 0 and 2
    first_four = v[:, :, :4].mean(dim=2, keepdim=True)
    first_heads_miss_the_newest_key = torch.stack(
        [first_four[:, 0], means[:, 0], first_four[:, 1], means[:, 1]], dim=1
    )
    assert_close(
        submission.grouped_query_attention(q, k, v),
        expected,
        what="grouped_query_attention(q, k, v) (causal by default)",
        misconceptions={
            TOP_LEFT: v[:, [0, 0, 1, 1], :1],
            TILED: means[:, [0, 1, 0, 1]],
            FOLDED_ROWS: first_heads_miss_the_newest_key,
        },
    )


def test_shape_and_dtype(submission):
    """q (2, 8, 3, 16), k (2, 2, 5, 16), v (2, 2, 5, 8): the output is (2, 8, 3, 8), float32."""
    q, k, v = torch.randn(2, 8, 3, 16), torch.randn(2, 2, 5, 16), torch.randn(2, 2, 5, 8)
    out = submission.grouped_query_attention(q, k, v, causal=True)
    expect(isinstance(out, torch.Tensor), "grouped_query_attention must return a torch.Tensor")
    expect(
        tuple(out.shape) == (2, 8, 3, 8),
        f"the output has shape {tuple(out.shape)}; expected (2, 8, 3, 8) = (B, n_heads, T_q, d_v)",
        hint="one output per query head and query position, with the width of v",
    )
    expect(
        out.dtype == torch.float32, f"the output has dtype {out.dtype}; expected torch.float32 (the input's)"
    )


def test_heads_not_a_multiple_raise_value_error(submission):
    """6 query heads cannot share 4 kv heads evenly: ValueError."""
    q, k, v = torch.randn(1, 6, 2, 8), torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 8)
    with pytest.raises(ValueError):
        submission.grouped_query_attention(q, k, v)
