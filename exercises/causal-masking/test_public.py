"""Public tests: small cases you can check by hand.

Run them with `grader test causal-masking attention.py`.
"""

import math

import pytest
import torch

from grader.testing import assert_close, expect

T, F = True, False
ONES = torch.ones(3, 5, dtype=torch.bool)


def test_causal_mask_top_left_3x5(submission):
    """causal_mask(3, 5): query i may attend key j iff j <= i."""
    expected = torch.tensor(
        [
            [T, F, F, F, F],
            [T, T, F, F, F],
            [T, T, T, F, F],
        ]
    )
    assert_close(
        submission.causal_mask(3, 5),
        expected,
        misconceptions={
            "this is the bottom-right mask: align defaults to 'top_left'": ONES.tril(2),
            "diagonal excluded? query i may attend its own key (j <= i, not j < i)": ONES.tril(-1),
            "mask convention inverted? True must mean 'may attend'": ~expected,
            "mask points to the future? query i may attend the keys j <= i (tril, not triu)": ONES.triu(),
        },
    )


def test_causal_mask_bottom_right_3x5(submission):
    """causal_mask(3, 5, align="bottom_right"): j <= i + (n_k - n_q), the last query sees every key."""
    expected = torch.tensor(
        [
            [T, T, T, F, F],
            [T, T, T, T, F],
            [T, T, T, T, T],
        ]
    )
    assert_close(
        submission.causal_mask(3, 5, align="bottom_right"),
        expected,
        misconceptions={
            "this is the top-left mask: bottom_right shifts the diagonal by n_k - n_q = 2": ONES.tril(),
            "diagonal excluded? j <= i + (n_k - n_q), not <": ONES.tril(1),
            "mask points to the future? allowed keys are j <= i + (n_k - n_q) (tril, not triu)": ONES.triu(2),
        },
    )


def test_zero_queries_average_the_visible_values(submission):
    """With q = 0 every allowed key scores the same, so causal attention is a running mean of v."""
    q = torch.zeros(3, 4)
    k = torch.randn(3, 4)
    v = torch.tensor([[3.0, 0.0], [1.0, 6.0], [5.0, 0.0]])
    expected = torch.tensor(
        [
            [3.0, 0.0],  # v0
            [2.0, 3.0],  # (v0 + v1) / 2
            [3.0, 2.0],  # (v0 + v1 + v2) / 3
        ]
    )
    assert_close(
        submission.scaled_dot_product_attention(q, k, v, is_causal=True),
        expected,
        misconceptions={
            "is_causal ignored? every row averaged all three values": v.mean(0).expand(3, 2),
            "diagonal excluded? query i may attend its own key (j <= i, not j < i)": torch.tensor(
                [[0.0, 0.0], [3.0, 0.0], [2.0, 3.0]]
            ),
            "mask points to the future? query i may attend the keys j <= i": torch.tensor(
                [[3.0, 2.0], [3.0, 3.0], [5.0, 0.0]]
            ),
            "masked after the softmax? the weights of the allowed keys must sum to 1": v.cumsum(0) / 3,
        },
    )


def test_one_query_two_keys_by_hand(submission):
    """d = 4, so the scale is 1/2: the scores are 0 and ln 3, the weights 1/4 and 3/4."""
    x = math.log(3) / 2  # q . k1 = 4 x = 2 ln 3, scaled by 1 / sqrt(4): ln 3
    q = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    k = torch.tensor([[0.0, 0.0, 0.0, 0.0], [x, x, x, x]])
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = torch.tensor([[0.25, 0.75]])
    assert_close(
        submission.scaled_dot_product_attention(q, k, v),
        expected,
        misconceptions={
            "forgot the 1/sqrt(d) scale?": torch.tensor([[0.1, 0.9]]),
            "scaled by 1/d instead of 1/sqrt(d)?": torch.tensor(
                [[1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]]
            ),
        },
    )


def test_shape_without_batch_dims(submission):
    """q (3, 8), k (5, 8), v (5, 2): no leading dims, d_v != d; the output is (3, 2)."""
    q, k, v = torch.randn(3, 8), torch.randn(5, 8), torch.randn(5, 2)
    out = submission.scaled_dot_product_attention(q, k, v, is_causal=True, align="bottom_right")
    expect(isinstance(out, torch.Tensor), "scaled_dot_product_attention must return a torch.Tensor")
    expect(
        tuple(out.shape) == (3, 2),
        f"the output has shape {tuple(out.shape)}; expected (3, 2) = (n_q, d_v)",
        hint="the output has one row per query and the width of v",
    )
    expect(
        out.dtype == torch.float32, f"the output has dtype {out.dtype}; expected torch.float32 (the input's)"
    )


@pytest.mark.parametrize(
    "align",
    [pytest.param("diagonal", id="diagonal"), pytest.param("bottom-right", id="dash-instead-of-underscore")],
)
def test_unknown_align_raises_value_error(submission, align):
    """align must be "top_left" or "bottom_right"; anything else raises ValueError."""
    with pytest.raises(ValueError):
        submission.causal_mask(3, 5, align=align)
