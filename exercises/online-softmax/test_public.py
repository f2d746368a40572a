"""Public tests: small cases you can check by hand.

Run them with `grader test online-softmax flash.py`.
"""

import math

import torch

from grader.testing import assert_close, expect

INF = float("inf")


def plain_attention(q, k, v, is_causal=False):
    """(out, lse) the plain way, from the whole score matrix: what your blocked version must match."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., n_q, n_k)
    if is_causal:
        n_q, n_k = s.shape[-2:]
        s = s.masked_fill(torch.ones(n_q, n_k, dtype=torch.bool).triu(1), -INF)  # hide key j > query i
    return torch.softmax(s, dim=-1) @ v, torch.logsumexp(s, dim=-1)


def test_online_softmax_by_hand(submission):
    """The lesson's example: x = [1, 3, 2, 5] in blocks of 2."""
    x = torch.tensor([1.0, 3.0, 2.0, 5.0])
    # block [1, 3]: m = 3, l = e^-2 + 1 = 1.1353
    # block [2, 5]: m = 5, l = 1.1353 * e^-2 + e^-3 + 1 = 1.2034
    # softmax = exp(x - 5) / 1.2034 = [0.0152, 0.1125, 0.0414, 0.8310]
    l1 = math.exp(-2) + 1  # after the first block
    expected = torch.exp(x - 5) / (l1 * math.exp(-2) + math.exp(-3) + 1)
    assert_close(
        submission.online_softmax(x, 2),
        expected,
        misconceptions={
            "the running sum was not rescaled when the max went from 3 to 5 (l = 2.1851 instead of "
            "1.2034): multiply it by exp(3 - 5) first": torch.exp(x - 5) / (l1 + math.exp(-3) + 1),
            "each block normalised on its own? the softmax is over the whole row": torch.cat(
                [torch.softmax(x[:2], 0), torch.softmax(x[2:], 0)]
            ),
        },
    )


def test_online_softmax_any_block_size(submission):
    """Leading dims, and block sizes that do not divide the row (a shorter last block), 1, and > n."""
    x = torch.randn(2, 3, 10) * 3
    for block in (1, 3, 4, 10, 16):
        assert_close(submission.online_softmax(x, block), torch.softmax(x, -1), what=f"block={block}")


def test_online_softmax_masked_entries(submission):
    """-inf means weight 0. The first block [-inf, -inf] comes before any finite value: no NaN.
    A row of only -inf returns zeros."""
    x = torch.tensor([[-INF, -INF, 0.0, 1.0, -INF], [-INF, -INF, -INF, -INF, -INF]])
    expected = torch.tensor([[0.0, 0.0, 1 / (1 + math.e), math.e / (1 + math.e), 0.0], [0.0] * 5])
    assert_close(
        submission.online_softmax(x, 2),
        expected,
        hint="while the running max is still -inf, exp(x - m) is exp(-inf - (-inf)) = NaN: "
        "subtract 0 instead of m while m is -inf; a row with l = 0 gets zeros",
    )


def test_flash_one_query_by_hand(submission):
    """The lesson's example: d = 1 (scale 1), scores [2, 1, 3], keys in blocks of 2."""
    q = torch.tensor([[1.0]])
    k = torch.tensor([[2.0], [1.0], [3.0]])
    v = torch.tensor([[10.0], [20.0], [30.0]])
    # block 1: m = 2, l = 1 + e^-1 = 1.3679, acc = 10 + 20 e^-1 = 17.358
    # block 2: m = 3, alpha = e^-1: l = 1.3679 e^-1 + 1 = 1.5032, acc = 17.358 e^-1 + 30 = 36.386
    # out = 36.386 / 1.5032 = 24.205, lse = 3 + log(1.5032) = 3.4076
    out, lse = submission.flash_attention_forward(q, k, v, block_q=1, block_k=2)
    w = torch.tensor([math.exp(-1), math.exp(-2), 1.0])
    assert_close(
        out,
        (w @ v / w.sum()).reshape(1, 1),
        misconceptions={
            "the running output and sum were not rescaled when the max went from 2 to 3": torch.tensor(
                [[(10 + 20 * math.exp(-1) + 30) / (1 + math.exp(-1) + 1)]]
            ),
        },
    )
    assert_close(
        lse,
        torch.tensor([3 + math.log(w.sum().item())]),
        what="lse",
        misconceptions={
            "lse is the running max? lse = m + log(l)": torch.tensor([3.0]),
            "lse in base 2? use the natural log": torch.tensor(
                [(3 + math.log(w.sum().item())) / math.log(2)]
            ),
        },
    )


def test_flash_matches_plain_attention(submission):
    """Ragged tiles (10 queries in blocks of 4, 13 keys in blocks of 3), with and without is_causal."""
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 13, 8), torch.randn(2, 3, 13, 5)
    for is_causal in (False, True):
        out, lse = submission.flash_attention_forward(q, k, v, block_q=4, block_k=3, is_causal=is_causal)
        expected_out, expected_lse = plain_attention(q, k, v, is_causal)
        assert_close(out, expected_out, what=f"out (is_causal={is_causal})", rtol=1e-5, atol=1e-5)
        assert_close(lse, expected_lse, what=f"lse (is_causal={is_causal})", rtol=1e-5, atol=1e-5)


def test_flash_shapes_and_dtypes(submission):
    """float16 inputs: out is (..., n_q, d_v) in float16, lse is (..., n_q) in float32."""
    q, k, v = torch.randn(3, 6, 8).half(), torch.randn(3, 9, 8).half(), torch.randn(3, 9, 4).half()
    result = submission.flash_attention_forward(q, k, v, block_q=4, block_k=4)
    expect(isinstance(result, tuple) and len(result) == 2, "return a tuple (out, lse)")
    out, lse = result
    expect(
        tuple(out.shape) == (3, 6, 4),
        f"out has shape {tuple(out.shape)}; expected (3, 6, 4) = (..., n_q, d_v)",
    )
    expect(out.dtype == torch.float16, f"out has dtype {out.dtype}; expected torch.float16 (the dtype of q)")
    expect(tuple(lse.shape) == (3, 6), f"lse has shape {tuple(lse.shape)}; expected (3, 6) = (..., n_q)")
    expect(lse.dtype == torch.float32, f"lse has dtype {lse.dtype}; expected torch.float32 (always)")


def test_merge_two_halves(submission):
    """Attention over keys 0..6 merged with attention over keys 7..11 is attention over all 12."""
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 12, 8), torch.randn(2, 12, 8)
    out_a, lse_a = plain_attention(q, k[:, :7], v[:, :7])
    out_b, lse_b = plain_attention(q, k[:, 7:], v[:, 7:])
    out, lse = plain_attention(q, k, v)
    merged = submission.merge_partials(out_a, lse_a, out_b, lse_b)
    assert_close(
        merged,
        (out, lse),
        rtol=1e-5,
        atol=1e-5,
        what="(out, lse)",
        misconceptions={
            "averaged the two outputs? weight each by exp(lse_part - lse_merged)": ((out_a + out_b) / 2, lse),
        },
    )


def test_merge_with_nothing(submission):
    """A partial over no keys (out 0, lse -inf) leaves the other unchanged."""
    q, k, v = torch.randn(4, 8), torch.randn(6, 8), torch.randn(6, 8)
    out_a, lse_a = plain_attention(q, k, v)
    empty_out, empty_lse = torch.zeros(4, 8), torch.full((4,), -INF)
    assert_close(
        submission.merge_partials(out_a, lse_a, empty_out, empty_lse),
        (out_a, lse_a),
        what="(out, lse)",
        hint="exp(-inf - lse) is 0: the empty partial gets weight 0",
    )
