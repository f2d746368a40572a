"""Hidden tests for grouped-query-attention: repeat_kv's layout, random GQA / MQA / MHA cases against
PyTorch's own attention on the repeated heads with a bottom-right mask, decode steps, causality,
dtypes, gradients, argument checks, inputs left alone, and the largest allocation of one call."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: submissions may not call it

from grader.testing import (
    Call,
    Seq,
    assert_causal,
    assert_close,
    assert_gradients_close,
    call_unchanged,
    shrink,
)

# One wording per mistake, the same as in the public tests.
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
KV_SCALE = "scaled by 1/sqrt(n_kv_heads * d)? The scale is 1/sqrt(d), d = the size of one head (q.shape[-1])"
NO_SCALE = "forgot the 1/sqrt(d) scale?"
NO_MASK = "causal mask ignored? With causal=True query i may attend only the keys j <= i + (T_k - T_q)"
MASK_WHEN_NOT_CAUSAL = "applied a causal mask though causal=False? Then every query attends every key"
FOLDED_ROWS = (
    "causal mask built over the g * T_q folded query rows? It depends on the query's position only "
    "(row % T_q): build it for (T_q, T_k) and broadcast it over the heads of the group"
)
RETURNED_FLOAT32 = "returned float32? The output must have the dtype of q"
EMPTY_ROWS = (
    "a query with no allowed key (T_q > T_k) must give a row of zeros: its scores are all -inf, and the "
    "softmax of that row is NaN unless those weights are set to 0"
)

HALF_EPS = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def tolerance_for(dtype):
    """One rounding of the exact result to a half dtype (plus float32's atol near zero); otherwise
    the dtype's default tolerance."""
    if dtype in HALF_EPS:
        return {"rtol": HALF_EPS[dtype], "atol": 1e-5}
    return {}


def randn(rng, *shape, dtype=torch.float32, scale=1.0):
    x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))
    return x.to(dtype)


def qkv(rng, b, n_heads, n_kv, t_q, t_k, d, d_v=None, dtype=torch.float32):
    return (
        randn(rng, b, n_heads, t_q, d, dtype=dtype),
        randn(rng, b, n_kv, t_k, d, dtype=dtype),
        randn(rng, b, n_kv, t_k, d if d_v is None else d_v, dtype=dtype),
    )


def llama_repeat_kv(x, n_rep):
    """Hugging Face Llama's repeat_kv: kv head j becomes heads j*n_rep .. j*n_rep + n_rep - 1."""
    b, n_kv, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, n_kv, n_rep, t, d).reshape(b, n_kv * n_rep, t, d)


def bottom_right(t_q, t_k):
    """Bool (t_q, t_k), True = may attend: j <= i + (t_k - t_q) (torch's causal_lower_right)."""
    return torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)


def oracle(q, k, v, causal=True):
    """PyTorch's attention (F.scaled_dot_product_attention) on the repeated heads, with an explicit
    bottom-right bool mask, in float64, rounded once to q's dtype. Rows with no allowed key are 0."""
    g = q.shape[1] // k.shape[1]
    q64, k64, v64 = q.double(), llama_repeat_kv(k.double(), g), llama_repeat_kv(v.double(), g)
    mask = bottom_right(q.shape[-2], k.shape[-2]) if causal else None
    out = F.scaled_dot_product_attention(q64, k64, v64, attn_mask=mask)
    return torch.nan_to_num(out, nan=0.0).to(q.dtype)


def attend(q, k_full, v_full, allowed, scale):
    """Attention of q over already-repeated heads with a given mask and scale, in float64: the
    output of a mistake, to name it when a submission reproduces it."""
    scores = (q.double() @ k_full.double().transpose(-2, -1)) * scale
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if allowed is not None:
        weights = weights.masked_fill(~allowed, 0.0)
    return (weights @ v_full.double()).to(q.dtype)


def folded_rows_mask(n_heads, g, t_q, t_k):
    """(n_heads, t_q, t_k): the mask of a solution that folds the g heads of a group into g * t_q
    query rows and builds a bottom-right mask over those rows as if they were positions."""
    i = torch.arange(t_q).view(1, t_q, 1)
    j = torch.arange(t_k).view(1, 1, t_k)
    within = (torch.arange(n_heads) % g).view(n_heads, 1, 1)  # the head's place in its group
    row = within * t_q + i
    return j <= row + (t_k - g * t_q)


def mistakes(q, k, v, causal):
    """Outputs of the likely mistakes on these inputs; those equal to the right answer are left out."""
    n_heads, n_kv, t_q, d = q.shape[1], k.shape[1], q.shape[2], q.shape[3]
    t_k = k.shape[2]
    g = n_heads // n_kv
    k_full, v_full = llama_repeat_kv(k, g), llama_repeat_kv(v, g)
    mask = bottom_right(t_q, t_k) if causal else None
    scale = 1 / math.sqrt(d)
    found = {
        TILED: attend(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1), mask, scale),
        MODEL_SCALE: attend(q, k_full, v_full, mask, 1 / math.sqrt(n_heads * d)),
        KV_SCALE: attend(q, k_full, v_full, mask, 1 / math.sqrt(n_kv * d)),
        NO_SCALE: attend(q, k_full, v_full, mask, 1.0),
    }
    if causal:
        found[TOP_LEFT] = attend(q, k_full, v_full, torch.ones(t_q, t_k, dtype=torch.bool).tril(), scale)
        found[NO_MASK] = attend(q, k_full, v_full, None, scale)
        found[FOLDED_ROWS] = attend(q, k_full, v_full, folded_rows_mask(n_heads, g, t_q, t_k), scale)
    else:
        found[MASK_WHEN_NOT_CAUSAL] = attend(q, k_full, v_full, bottom_right(t_q, t_k), scale)
    right = oracle(q, k, v, causal)
    return {hint: out for hint, out in found.items() if not torch.allclose(out.double(), right.double())}


# ---------------------------------------------------------------------------- repeat_kv


@pytest.mark.parametrize(
    "shape, n_rep",
    [
        pytest.param((2, 3, 5, 4), 2, id="3-kv-heads-x2"),
        pytest.param((1, 1, 7, 8), 6, id="mqa-1-kv-head-x6"),
        pytest.param((2, 4, 3, 2), 4, id="4-kv-heads-x4"),
        pytest.param((2, 4, 3, 2), 1, id="n_rep-1"),
    ],
)
def test_repeat_kv(submission, rng, shape, n_rep):
    """repeat_kv(x, n_rep) equals Llama's repeat_kv: head h of the result is head h // n_rep of x."""
    x = randn(rng, *shape)
    assert_close(
        submission.repeat_kv(x, n_rep),
        llama_repeat_kv(x, n_rep),
        what=f"repeat_kv(x, {n_rep})",
        misconceptions={TILED_REPEAT_KV: x.repeat(1, n_rep, 1, 1)} if n_rep > 1 and shape[1] > 1 else None,
    )


# ---------------------------------------------------------------------------- attention

HEADS = [
    pytest.param(8, 2, id="gqa-8q-2kv"),
    pytest.param(6, 3, id="gqa-6q-3kv"),
    pytest.param(8, 1, id="mqa-8q-1kv"),
    pytest.param(4, 4, id="mha-4q-4kv"),
]
LENGTHS = [
    pytest.param(1, 17, id="decode-1-query-17-keys"),
    pytest.param(5, 20, id="chunk-5-queries-20-keys"),
    pytest.param(12, 12, id="square-12"),
]
CAUSAL = [pytest.param(True, id="causal"), pytest.param(False, id="not-causal")]


@pytest.mark.parametrize("causal", CAUSAL)
@pytest.mark.parametrize("t_q, t_k", LENGTHS)
@pytest.mark.parametrize("n_heads, n_kv", HEADS)
def test_matches_torch(submission, rng, n_heads, n_kv, t_q, t_k, causal):
    """GQA, MQA and MHA against torch's attention on the repeated heads (bottom-right mask, float64)."""
    q, k, v = qkv(rng, 2, n_heads, n_kv, t_q, t_k, 16)
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=causal),
        oracle(q, k, v, causal),
        what="the output (checked against torch's own attention)",
        misconceptions=mistakes(q, k, v, causal),
    )


def test_random_cases(submission, seed):
    """Random sizes (batch, kv heads, group size, lengths, head size), causal; failures are shrunk."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        t_q = sizes["t_q"]
        q, k, v = qkv(
            rng,
            sizes["batch"],
            sizes["kv_heads"] * sizes["group"],
            sizes["kv_heads"],
            t_q,
            t_q + sizes["cached"],
            sizes["d"],
        )
        assert_close(
            submission.grouped_query_attention(q, k, v, causal=True),
            oracle(q, k, v, True),
            misconceptions=mistakes(q, k, v, True),
        )

    shrink(
        check,
        {"batch": 2, "kv_heads": 3, "group": 4, "t_q": 6, "cached": 9, "d": 16},
        seed=seed,
        minimum={"batch": 1, "kv_heads": 1, "group": 1, "t_q": 1, "cached": 0, "d": 1},
    )


def test_more_queries_than_keys(submission, rng):
    """T_q > T_k, causal: queries before every key return zero rows (never NaN); the rest as usual."""
    q, k, v = qkv(rng, 2, 6, 2, 7, 3, 16)
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=True),
        oracle(q, k, v, True),
        hint=EMPTY_ROWS,
        misconceptions=mistakes(q, k, v, True),
    )


@pytest.mark.parametrize("new", [pytest.param(1, id="one-new-token"), pytest.param(3, id="three-new-tokens")])
def test_kv_cache_decoding(submission, rng, new):
    """The newest queries over the whole cache equal the last rows of full causal attention."""
    q, k, v = qkv(rng, 2, 8, 2, 14, 14, 16)
    full = oracle(q, k, v, True)
    latest = q[:, :, -new:].contiguous()
    assert_close(
        submission.grouped_query_attention(latest, k, v, causal=True),
        full[:, :, -new:],
        what=f"attention of the {new} newest queries over the 14 cached keys",
        misconceptions=mistakes(latest, k, v, True),
    )


@pytest.mark.parametrize(
    "t_q, t_k", [pytest.param(10, 10, id="square-10"), pytest.param(4, 12, id="chunk-4-queries-12-keys")]
)
def test_no_future_leakage(submission, rng, t_q, t_k):
    """Changing keys and values after a position leaves the outputs of the queries up to it unchanged."""
    q, k, v = qkv(rng, 2, 6, 2, t_q, t_k, 8)
    assert_causal(
        submission.grouped_query_attention,
        [Seq(q, start=t_k - t_q), Seq(k), Seq(v)],
        rng=rng,
        out_start=t_k - t_q,
        kwargs={"causal": True},
        rtol=1e-5,
        atol=1e-6,
        what="the output of a query",
        hint="query i may use only the keys j <= i + (T_k - T_q), in every head",
    )


def test_non_contiguous_inputs(submission, rng):
    """q, k, v as Llama makes them: x.view(B, T, heads, d).transpose(1, 2), not contiguous."""
    b, t, n_heads, n_kv, d = 2, 9, 8, 2, 16
    q = randn(rng, b, t, n_heads, d).transpose(1, 2)
    k = randn(rng, b, t, n_kv, d).transpose(1, 2)
    v = randn(rng, b, t, n_kv, d).transpose(1, 2)
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=True),
        oracle(q, k, v, True),
        hint="the inputs are transposed views: reshape them (reshape copies when a view is impossible), "
        "do not view them",
        misconceptions=mistakes(q, k, v, True),
    )


def test_value_width(submission, rng):
    """v narrower than q and k (d = 32, d_v = 8): the output has the width of v."""
    q, k, v = qkv(rng, 2, 8, 4, 3, 11, 32, d_v=8)
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=True),
        oracle(q, k, v, True),
        misconceptions=mistakes(q, k, v, True),
    )


def test_float64(submission, rng):
    """float64 inputs are computed in float64 and returned in float64, to float64's precision."""
    q, k, v = qkv(rng, 2, 6, 2, 4, 15, 16, dtype=torch.float64)
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=True),
        oracle(q, k, v, True),
        hint="float64 inputs keep float64: compute in their own dtype, no detour through float32",
        misconceptions=mistakes(q, k, v, True),
    )


HALF = [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]


@pytest.mark.parametrize(
    "t_q, t_k, causal",
    [
        pytest.param(1, 40, True, id="decode-1-query-40-keys"),
        pytest.param(24, 24, True, id="square-24"),
        pytest.param(6, 40, False, id="not-causal"),
    ],
)
@pytest.mark.parametrize("dtype", HALF)
def test_half_precision(submission, rng, dtype, t_q, t_k, causal):
    """Half-precision inputs give q's dtype, within one rounding of the exact result."""
    q, k, v = qkv(rng, 2, 8, 2, t_q, t_k, 64, d_v=32, dtype=dtype)
    expected = oracle(q, k, v, causal)
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=causal),
        expected,
        **tolerance_for(dtype),
        hint="compute the scores, the softmax and the weighted sum in float32, and cast only the result "
        "back to the input's dtype",
        misconceptions={RETURNED_FLOAT32: expected.float(), **mistakes(q, k, v, causal)},
    )


def test_float16_scores_beyond_its_range(submission, rng):
    """float16 inputs whose raw scores q . k exceed 65504, float16's largest value."""
    signs = torch.from_numpy(rng.choice(np.float32([-1.0, 1.0]), size=(1, 2, 10, 64)))
    k = (40 * signs).half()  # q . k reaches 64 * 40 * 40 = 102400 before the 1/8 scale
    q = k.repeat_interleave(2, dim=1).clone()  # 4 query heads, each equal to its kv head's keys
    v = randn(rng, 1, 2, 10, 16, dtype=torch.float16)
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=True),
        oracle(q, k, v, True),
        **tolerance_for(torch.float16),
        hint="q @ k^T overflows float16 here (inf, then NaN in the softmax): compute the scores in float32",
        misconceptions=mistakes(q, k, v, True),
    )


# ---------------------------------------------------------------------------- gradients


def oracle_for_gradients(q, k, v, causal=True):
    """The oracle, differentiable: float64 inside, q's dtype outside."""
    g = q.shape[1] // k.shape[1]
    mask = bottom_right(q.shape[-2], k.shape[-2]) if causal else None
    out = F.scaled_dot_product_attention(
        q.double(), llama_repeat_kv(k.double(), g), llama_repeat_kv(v.double(), g), attn_mask=mask
    )
    return out.to(q.dtype)


@pytest.mark.parametrize(
    "n_heads, n_kv, t_q, t_k, causal",
    [
        pytest.param(8, 2, 5, 13, True, id="gqa-chunk-causal"),
        pytest.param(6, 1, 1, 9, True, id="mqa-decode"),
        pytest.param(6, 3, 8, 8, False, id="gqa-square-not-causal"),
    ],
)
def test_gradients(submission, rng, n_heads, n_kv, t_q, t_k, causal):
    """Backward: the gradients of q, k and v against autograd through torch's attention."""
    q, k, v = qkv(rng, 2, n_heads, n_kv, t_q, t_k, 16)
    # the forward pass first, so that a wrong output is named as such, not as a gradient problem
    assert_close(
        submission.grouped_query_attention(q, k, v, causal=causal),
        oracle(q, k, v, causal),
        misconceptions=mistakes(q, k, v, causal),
    )
    q.requires_grad_()
    k.requires_grad_()
    v.requires_grad_()
    grad = randn(rng, 2, n_heads, t_q, 16)
    assert_gradients_close(
        submission.grouped_query_attention,
        oracle_for_gradients,
        (q, k, v),
        {"causal": causal},
        grad_output=grad,
        names=("q", "k", "v"),
        rtol=1e-4,
        atol=1e-5,
        hint="build the output from differentiable tensor operations (no .detach(), no .item(), no in-place "
        "writes into tensors autograd needs); a kv head's gradient sums over the query heads that share it",
    )


# ---------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "n_heads, n_kv",
    [
        pytest.param(8, 3, id="8q-3kv"),
        pytest.param(4, 8, id="4q-8kv"),
        pytest.param(6, 4, id="6q-4kv"),
    ],
)
def test_head_counts_that_do_not_divide(submission, rng, n_heads, n_kv):
    """n_heads not a multiple of n_kv_heads raises ValueError."""
    q, k, v = qkv(rng, 1, n_heads, n_kv, 3, 5, 8)
    try:
        submission.grouped_query_attention(q, k, v, causal=True)
    except ValueError:
        return
    pytest.fail(
        f"grouped_query_attention with {n_heads} query heads and {n_kv} kv heads returned normally; "
        "it must raise ValueError"
    )


def test_inputs_unchanged(submission, rng):
    """grouped_query_attention leaves q, k and v as they were."""
    q, k, v = qkv(rng, 2, 8, 2, 3, 10, 16)
    # only the inputs here: the output on such inputs is checked in test_matches_torch (gqa-8q-2kv, causal)
    call_unchanged(
        submission.grouped_query_attention,
        q,
        k,
        v,
        names=("q", "k", "v"),
        what="grouped_query_attention",
        hint="the caller keeps using q, k and v (k and v are the cache of the next step): scale new "
        "tensors (q * scale), never with *= or a trailing-underscore method on the ones given",
        causal=True,
    )


# ---------------------------------------------------------------------------- memory

# 8 new queries of 32 heads over a cache of 1024 keys with 4 kv heads, d = 64 (g = 8). The
# reference's largest tensor is its (1, 4, 64, 1024) float32 score matrix, 1 MiB, the size of K;
# K or V repeated to 32 heads is 8 MiB (8x), and so is the copy `@` makes when it broadcasts a
# grouped view of q against k[:, :, None]. Honest variants stay within 2x: einsum, a copy of K,
# a contiguous transpose of K, scores in float64.
MEM_B, MEM_HEADS, MEM_KV, MEM_TQ, MEM_TK, MEM_D = 1, 32, 4, 8, 1024, 64


@pytest.mark.performance
def test_no_repeated_kv(perf):
    """The largest tensor one call allocates, for 8 queries over a long cache, against the reference."""

    def make(rng):
        q, k, v = qkv(rng, MEM_B, MEM_HEADS, MEM_KV, MEM_TQ, MEM_TK, MEM_D)
        return Call("grouped_query_attention", q, k, v, causal=True)

    perf.measure(
        "kv_memory",
        make,
        hint="a tensor of K or V repeated to n_heads heads was built (repeat_kv, repeat_interleave, expand "
        "then a copy, or `@` broadcasting a grouped q against k[:, :, None]): fold the group into the "
        "query rows, or use torch.einsum",
    )
