"""Hidden tests for sliding-window-attention: random inputs against torch's own attention with an
explicit band mask (float64, trusted side), every window from 1 to past the end, both alignments,
lengths spanning many blocks, half precision, gradients, causality and the window's reach, inputs
left alone, and the growth of memory and compute with the length."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: submissions may not call its attention

from grader.testing import (
    Call,
    RemoteError,
    Seq,
    assert_causal,
    assert_close,
    call_unchanged,
    compare,
    expect,
    local_gradients,
    shrink,
)

# one wording per mistake, the same as in the public tests
PLUS_ONE = "window off by one? query i sees the window keys i - w < j <= i (w keys), not i - w <= j (w + 1)"
NO_SELF = "the query's own key is missing? the window i - w < j <= i includes j = i"
TOP_LEFT = (
    "aligned top-left where bottom-right was asked? with bottom_right, query i is position i + n_k - n_q"
)
EARLY_KEYS = (
    "the keys before the first query were left out? with bottom_right, query i at position p sees "
    "the keys p - w < j <= p, cached keys before the first new query included"
)
BOTTOM_RIGHT = "aligned bottom-right where top-left was asked? with top_left, query i is position i"
NO_WINDOW = "the window was ignored? that is plain causal attention: query i sees only its w latest keys"
BOTH_SIDES = "the window looks ahead too? it is causal: the keys i - w < j <= i, none after the query"
NO_SCALE = "forgot the 1/sqrt(d) scale?"
HALF_RETURNED_FLOAT32 = "returned float32? the output must have the input's dtype"
HALF_IN_FLOAT32 = (
    "the same inputs in float32 give the right output, but in half precision it is off by more than "
    "one rounding: compute the scores, the softmax and the weighted sum in float32, and cast only the "
    "result back to the input's dtype"
)
FLOAT16_OVERFLOW = (
    "the same inputs in float32 give the right output, but in float16 it has inf or NaN: q @ k^T "
    "overflows float16 here (inf, then NaN in the softmax), so compute the scores in float32"
)
NAN_OUTPUT = (
    "every query sees at least its own key, so no output can be NaN: a row with no allowed key "
    "(a window that leaves out j = i, or a padded row) was computed and kept"
)
NAN_GRADIENT = (
    "a gradient is NaN where the output is right: a computed row with no allowed key (such as a "
    "padded query past the end) has a NaN softmax, and an additive -inf mask carries it into the "
    "gradients even after the row is sliced off; keep every computed row's window non-empty, or "
    "mask with masked_fill / torch.where"
)
GRADIENT = (
    "build the output from torch operations on q, k and v: no .detach(), .numpy() or .tolist(), "
    "and no in-place writes into tensors autograd needs"
)
# one wording for every form of the mistake (see mistakes()): blocks counted from query 0 or from
# position 0 (the positions m * B .. (m + 1) * B - 1), of any size B
PREVIOUS_BLOCK = (
    "the keys before each block of queries were left out? a block also needs the w - 1 keys before "
    "its first query: attending inside the block only is chunked attention, not a sliding window"
)


# ---------------------------------------------------------------------------- the oracle


def offset(align, n_q, n_k):
    return 0 if align == "top_left" else n_k - n_q


def allowed(n_q, n_k, shift, lo, hi):
    """Bool (n_q, n_k): True where p - lo <= j <= p + hi, p = i + shift (the query's position)."""
    p = torch.arange(n_q).unsqueeze(1) + shift
    j = torch.arange(n_k).unsqueeze(0)
    return (j >= p - lo) & (j <= p + hi)


def band(n_q, n_k, window, align="top_left"):
    """The sliding window: p - window < j <= p."""
    return allowed(n_q, n_k, offset(align, n_q, n_k), window - 1, 0)


def attend(q, k, v, mask, scale=None):
    """torch's attention in float64 with a bool mask (True = may attend), cast to q's dtype."""
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    out = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask, scale=scale)
    return out.to(q.dtype)


def oracle(q, k, v, window, align="top_left"):
    """Sliding-window attention computed by torch in float64 with an explicit band mask, rounded
    once to q's dtype. Differentiable: the local side of the gradient checks."""
    return attend(q, k, v, band(q.shape[-2], k.shape[-2], window, align))


def block_local(n_q, n_k, window, align, block, *, by_position=False):
    """The window cut at the start of each block (the keys before the block lost): blocks of `block`
    queries counted from query 0, or with `by_position` blocks of the positions
    m * block .. (m + 1) * block - 1 (chunked attention on absolute positions)."""
    shift = offset(align, n_q, n_k)
    p = torch.arange(n_q).unsqueeze(1) + shift  # each query's position
    first = (p // block) * block if by_position else ((p - shift) // block) * block + shift
    return band(n_q, n_k, window, align) & (torch.arange(n_k).unsqueeze(0) >= first)


def mistakes(got, q, k, v, window, align="top_left", *, blocks=(64, 128), cheap=False, rtol=None, atol=None):
    """Outputs of the likely mistakes, to name the one a submission made (`got`, its output: a
    mistake with several forms is named by the form `got` matches, with `rtol` and `atol`)."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    shift = offset(align, n_q, n_k)
    found = {
        PLUS_ONE: attend(q, k, v, allowed(n_q, n_k, shift, window, 0)),
        NO_SELF: attend(q, k, v, allowed(n_q, n_k, shift, window, -1)),
    }
    if n_q < n_k:
        other = "bottom_right" if align == "top_left" else "top_left"
        found[TOP_LEFT if align == "bottom_right" else BOTTOM_RIGHT] = oracle(q, k, v, window, other)
    right = band(n_q, n_k, window, align)
    # one block of all the queries, without the keys before the first of them
    early = block_local(n_q, n_k, window, align, n_q)
    seen = [right, early]
    chunks = []  # every other chunked mask: blocks from query 0 or from position 0, of each size
    for b in sorted({*blocks, window}):
        for by_position in (False, True):
            mask = block_local(n_q, n_k, window, align, b, by_position=by_position)
            if not any(torch.equal(mask, m) for m in seen):
                seen.append(mask)
                chunks.append(mask)
    if chunks:
        outputs = [attend(q, k, v, mask) for mask in chunks]
        matched = [out for out in outputs if _matches(got, out, rtol, atol)]
        found[PREVIOUS_BLOCK] = (matched or outputs)[0]
    if shift > 0:
        found[EARLY_KEYS] = attend(q, k, v, early)
    if cheap:
        return found
    found[NO_WINDOW] = attend(q, k, v, allowed(n_q, n_k, shift, n_k, 0))
    found[BOTH_SIDES] = attend(q, k, v, allowed(n_q, n_k, shift, window - 1, window - 1))
    found[NO_SCALE] = attend(q, k, v, right, scale=1.0)
    return found


def _matches(got, wrong, rtol, atol):
    try:
        return compare(got, wrong, rtol=rtol, atol=atol) is None
    except TypeError:
        return False


def nan_hint(got):
    """The NaN hint when the output shows NaN (assert_close says so in its own words too)."""
    if isinstance(got, torch.Tensor) and got.is_floating_point() and bool(torch.isnan(got).any()):
        return NAN_OUTPUT
    return ""


def randn(rng, *shape, dtype=torch.float32, scale=1.0):
    x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))
    return x.to(dtype)


def qkv(rng, lead, n_q, n_k, d, d_v, dtype=torch.float32):
    return (
        randn(rng, *lead, n_q, d, dtype=dtype),
        randn(rng, *lead, n_k, d, dtype=dtype),
        randn(rng, *lead, n_k, d_v, dtype=dtype),
    )


def check_attention(submission, q, k, v, window, align="top_left", *, what="the output", **kwargs):
    got = submission.sliding_window_attention(q, k, v, window, align=align)
    assert_close(
        got,
        oracle(q, k, v, window, align),
        what=what,
        hint=nan_hint(got),
        misconceptions=mistakes(got, q, k, v, window, align, **kwargs),
    )


# ---------------------------------------------------------------------------- window_mask

MASK_CASES = [
    pytest.param(1, 1, 1, "top_left", id="1x1"),
    pytest.param(7, 7, 3, "bottom_right", id="7x7-w3-bottom-right"),
    pytest.param(7, 7, 9, "top_left", id="7x7-w9-longer-than-T"),
    pytest.param(3, 9, 4, "top_left", id="3x9-w4-top-left"),
    pytest.param(3, 9, 4, "bottom_right", id="3x9-w4-bottom-right"),
    pytest.param(1, 8, 3, "bottom_right", id="1x8-w3-decoding"),
]


@pytest.mark.parametrize("n_q, n_k, window, align", MASK_CASES)
def test_window_mask(submission, reference, n_q, n_k, window, align):
    """window_mask for square and rectangular shapes, both alignments, windows from 1 to past the end."""
    shift = offset(align, n_q, n_k)
    wrong = {
        PLUS_ONE: allowed(n_q, n_k, shift, window, 0),
        NO_SELF: allowed(n_q, n_k, shift, window, -1),
        NO_WINDOW: allowed(n_q, n_k, shift, n_k, 0),
        "mask convention inverted? True must mean 'may attend'": ~band(n_q, n_k, window, align),
    }
    if n_q < n_k:
        other = "bottom_right" if align == "top_left" else "top_left"
        wrong[TOP_LEFT if align == "bottom_right" else BOTTOM_RIGHT] = band(n_q, n_k, window, other)
    assert_close(
        submission.window_mask(n_q, n_k, window, align=align, device="cpu"),
        reference.window_mask(n_q, n_k, window, align=align),
        what=f"window_mask({n_q}, {n_k}, {window}, align={align!r})",
        misconceptions=wrong,
    )


# ---------------------------------------------------------------------------- attention

WINDOWS = [
    pytest.param((2, 2), 37, 16, 16, 1, id="w1-each-query-sees-itself"),
    pytest.param((2, 2), 50, 16, 16, 2, id="w2"),
    pytest.param((2, 3), 150, 16, 8, 7, id="w7-T150-dv8"),
    pytest.param((1, 2), 200, 16, 16, 64, id="w64-T200"),
    pytest.param((1, 2), 200, 16, 16, 70, id="w70-T200"),
    pytest.param((3,), 45, 16, 16, 44, id="w-is-T-minus-1"),
    pytest.param((3,), 45, 16, 16, 1000, id="w-longer-than-T"),
    pytest.param((), 130, 8, 8, 5, id="no-batch-dims"),
    pytest.param((2, 2, 2), 67, 8, 24, 13, id="three-batch-dims-dv24"),
]


@pytest.mark.parametrize("lead, n, d, d_v, window", WINDOWS)
def test_windows(submission, rng, lead, n, d, d_v, window):
    """Random inputs (n_q = n_k), windows from 1 to past the end, against torch's band-masked attention."""
    q, k, v = qkv(rng, lead, n, n, d, d_v)
    check_attention(submission, q, k, v, window)


def test_window_one_is_v(submission, rng):
    """w = 1: each query sees only its own key, whatever the scores, so the output is v."""
    q, k, v = qkv(rng, (2, 3), 90, 90, 16, 16)
    got = submission.sliding_window_attention(q, k, v, 1)
    assert_close(got, v, hint=nan_hint(got), misconceptions=mistakes(got, q, k, v, 1, cheap=True))


@pytest.mark.parametrize(
    "n_q, n_k, window",
    [
        pytest.param(40, 40, 40, id="square-w-is-T"),
        pytest.param(40, 40, 1000, id="square-w-longer"),
        pytest.param(12, 40, 50, id="bottom-right-fewer-queries"),
    ],
)
def test_long_window_is_causal_attention(submission, rng, n_q, n_k, window):
    """A window that reaches the first key is causal attention: torch's, with the lower-right triangle."""
    q, k, v = qkv(rng, (2, 4), n_q, n_k, 32, 32)
    causal = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=n_k - n_q)
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=causal).float()
    got = submission.sliding_window_attention(q, k, v, window, align="bottom_right")
    assert_close(
        got,
        expected,
        what="the output (checked against torch's causal attention)",
        hint=nan_hint(got),
        misconceptions=mistakes(got, q, k, v, window, "bottom_right"),
    )


FEWER_QUERIES = [
    pytest.param(1, 300, 50, "bottom_right", id="decoding-one-query"),
    pytest.param(1, 40, 100, "bottom_right", id="decoding-window-longer-than-cache"),
    pytest.param(70, 200, 30, "bottom_right", id="seventy-queries-w30"),
    pytest.param(130, 300, 64, "bottom_right", id="130-queries-w64"),
    pytest.param(6, 40, 8, "top_left", id="top-left-fewer-queries"),
    pytest.param(100, 140, 20, "top_left", id="top-left-100-of-140"),
]


@pytest.mark.parametrize("n_q, n_k, window, align", FEWER_QUERIES)
def test_fewer_queries_than_keys(submission, rng, n_q, n_k, window, align):
    """n_q < n_k in both alignments: bottom-right queries are the last n_q positions, top-left the first."""
    q, k, v = qkv(rng, (2, 2), n_q, n_k, 16, 16)
    check_attention(submission, q, k, v, window, align)


@pytest.mark.parametrize("new", [pytest.param(1, id="one-new-token"), pytest.param(17, id="17-new-tokens")])
def test_kv_cache_decoding(submission, rng, new):
    """The newest queries over the whole cache (bottom-right) give the last rows of the full computation."""
    q, k, v = qkv(rng, (2, 3), 150, 150, 16, 16)
    full = oracle(q, k, v, 20)
    latest = q[..., -new:, :]
    got = submission.sliding_window_attention(latest, k, v, 20, align="bottom_right")
    assert_close(
        got,
        full[..., -new:, :],
        what=f"the attention of the {new} newest queries over the 150 cached keys",
        hint=nan_hint(got),
        misconceptions=mistakes(got, latest, k, v, 20, "bottom_right"),
    )


def test_long_sequence(submission, rng):
    """2048 positions with a window of 64: many blocks, each needing keys of the one before it."""
    q, k, v = qkv(rng, (1, 2), 2048, 2048, 32, 32)
    check_attention(submission, q, k, v, 64, blocks=(128,), cheap=True)


def test_random_cases(submission, seed):
    """Random lengths, windows, head sizes and alignments; a failure is shrunk to the smallest one."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        n_q = sizes["n_q"]
        n_k = n_q + sizes["extra_keys"]
        align = "bottom_right" if case_seed % 2 else "top_left"
        q, k, v = qkv(rng, (2,), n_q, n_k, sizes["d"], sizes["d"])
        check_attention(submission, q, k, v, sizes["window"], align, blocks=(64, 128), cheap=True)

    shrink(
        check,
        {"n_q": 150, "extra_keys": 40, "window": 24, "d": 16},
        seed=seed,
        minimum={"n_q": 1, "extra_keys": 0, "window": 1, "d": 1},
    )


# ---------------------------------------------------------------------------- dtypes

# A correct result is computed in float32 (or better) and rounded to the output dtype once, so it
# is within one unit in the last place of the exact result rounded the same way: rtol = the
# dtype's epsilon, plus float32's own atol for entries near zero. Computing in half precision is
# off by several units in the last place.
HALF_EPS = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def half_hint(submission, got, expected, q, k, v, window, align, *, rtol, atol):
    """The hint of a wrong half-precision output, from what was observed: the precision is named only
    when the same inputs in float32 come out right (a wrong window is left to the misconceptions)."""
    if _matches(got, expected, rtol, atol) or not float32_is_right(submission, q, k, v, window, align):
        return nan_hint(got)
    finite = not isinstance(got, torch.Tensor) or bool(torch.isfinite(got).all())
    return FLOAT16_OVERFLOW if q.dtype == torch.float16 and not finite else HALF_IN_FLOAT32


def float32_is_right(submission, q, k, v, window, align):
    """Whether the submission's output for the same inputs converted to float32 is right."""
    q, k, v = q.float(), k.float(), v.float()
    try:
        got = submission.sliding_window_attention(q, k, v, window, align=align)
    except RemoteError:  # the half-precision call went through: say nothing about this one
        return False
    return _matches(got, oracle(q, k, v, window, align), None, None)


@pytest.mark.parametrize(
    "n_q, n_k, window, align",
    [
        pytest.param(150, 150, 40, "top_left", id="top-left-T150-w40"),
        pytest.param(40, 150, 33, "bottom_right", id="bottom-right-40-of-150-w33"),
    ],
)
@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]
)
def test_half_precision(submission, rng, dtype, n_q, n_k, window, align):
    """float16 and bfloat16 inputs give the input's dtype, within one rounding of the exact result."""
    q, k, v = qkv(rng, (2, 2), n_q, n_k, 64, 32, dtype=dtype)
    expected = oracle(q, k, v, window, align)
    got = submission.sliding_window_attention(q, k, v, window, align=align)
    tol = {"rtol": HALF_EPS[dtype], "atol": 1e-5}
    assert_close(
        got,
        expected,
        **tol,
        hint=half_hint(submission, got, expected, q, k, v, window, align, **tol),
        misconceptions={
            HALF_RETURNED_FLOAT32: expected.float(),
            **mistakes(got, q, k, v, window, align, cheap=True, **tol),
        },
    )


def test_float16_scores_beyond_its_range(submission, rng):
    """float16 inputs whose raw scores q . k exceed 65504, float16's largest value."""
    signs = torch.from_numpy(rng.choice(np.float32([-1.0, 1.0]), size=(2, 80, 64)))
    k = (40 * signs).half()  # q . k reaches 64 * 40 * 40 = 102400 before the 1/8 scale
    q = k.clone()
    v = randn(rng, 2, 80, 16, dtype=torch.float16)
    expected = oracle(q, k, v, 8)
    got = submission.sliding_window_attention(q, k, v, 8)
    tol = {"rtol": HALF_EPS[torch.float16], "atol": 1e-5}
    assert_close(
        got,
        expected,
        **tol,
        hint=half_hint(submission, got, expected, q, k, v, 8, "top_left", **tol),
        misconceptions=mistakes(got, q, k, v, 8, cheap=True, **tol),
    )


def test_float64(submission, rng):
    """float64 inputs are computed in float64 and returned as float64."""
    q, k, v = qkv(rng, (2,), 100, 100, 16, 16, dtype=torch.float64)
    got = submission.sliding_window_attention(q, k, v, 9)
    assert_close(
        got, oracle(q, k, v, 9), hint=nan_hint(got), misconceptions=mistakes(got, q, k, v, 9, cheap=True)
    )


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "n_q, n_k, window, align",
    [
        pytest.param(150, 150, 20, "top_left", id="top-left-T150-w20"),
        pytest.param(45, 130, 16, "bottom_right", id="bottom-right-45-of-130-w16"),
    ],
)
def test_gradients(submission, rng, n_q, n_k, window, align):
    """Gradients of q, k and v against autograd through torch's attention in float64."""
    q, k, v = (t.requires_grad_(True) for t in qkv(rng, (2, 2), n_q, n_k, 16, 16))
    grad = randn(rng, 2, 2, n_q, 16)
    found = submission.sliding_window_attention.backward(q, k, v, window, grad_output=grad, align=align)
    out, grads, _ = local_gradients(oracle, (q, k, v, window), {"align": align}, grad)
    assert_close(
        found.output,
        out,
        hint=nan_hint(found.output),
        misconceptions=mistakes(found.output, q.detach(), k.detach(), v.detach(), window, align, cheap=True),
    )
    expect(
        len(found.inputs) == 3, "the output must be differentiable with respect to q, k and v", hint=GRADIENT
    )
    for name, got, want in zip("qkv", found.inputs, grads, strict=True):
        has_nan = isinstance(got, torch.Tensor) and bool(torch.isnan(got).any())
        assert_close(
            got,
            want,
            what=f"the gradient of {name}",
            rtol=1e-5,
            atol=1e-5,
            hint=NAN_GRADIENT if has_nan else GRADIENT,
        )


# ---------------------------------------------------------------------------- causality and reach


@pytest.mark.parametrize(
    "n_q, n_k, window, align",
    [
        pytest.param(12, 40, 8, "bottom_right", id="bottom-right"),
        pytest.param(90, 90, 70, "top_left", id="w70-several-blocks"),
    ],
)
def test_causal(submission, rng, n_q, n_k, window, align):
    """Changing the queries, keys and values after a position changes no output at or before it."""
    q, k, v = qkv(rng, (2, 2), n_q, n_k, 16, 16)
    shift = offset(align, n_q, n_k)
    assert_causal(
        submission.sliding_window_attention,
        [Seq(q, start=shift), Seq(k), Seq(v), window],
        rng=rng,
        out_start=shift,
        kwargs={"align": align},
        rtol=1e-5,
        atol=1e-5,
        hint="a query saw keys after its own position: the window is p - w < j <= p, nothing after p",
    )


@pytest.mark.parametrize(
    "n_q, n_k, window, align",
    [
        pytest.param(30, 120, 10, "bottom_right", id="bottom-right-w10"),
        pytest.param(200, 200, 64, "top_left", id="w64-several-blocks"),
    ],
)
def test_window_forgets_the_past(submission, rng, n_q, n_k, window, align):
    """Changing the keys and values up to position c changes no output at positions c + w and after."""
    q, k, v = qkv(rng, (2, 2), n_q, n_k, 16, 16)
    shift = offset(align, n_q, n_k)
    before = submission.sliding_window_attention(q, k, v, window, align=align)
    for cut in (n_k // 4, n_k // 2, n_k - window - 1):
        first_query = cut + window - shift  # query index whose position is cut + window
        if cut < 0 or first_query >= n_q:
            continue
        first_query = max(first_query, 0)
        k2, v2 = k.clone(), v.clone()
        k2[..., : cut + 1, :] = randn(rng, 2, 2, cut + 1, 16, scale=5.0)
        v2[..., : cut + 1, :] = randn(rng, 2, 2, cut + 1, 16, scale=5.0)
        after = submission.sliding_window_attention(q, k2, v2, window, align=align)
        assert_close(
            after[..., first_query:, :],
            before[..., first_query:, :],
            what="the outputs of the queries w or more positions after the keys and values that changed",
            rtol=1e-5,
            atol=1e-5,
            hint=f"a query saw a key further back than its window: with w = {window}, query position p sees "
            "the keys p - w < j <= p only",
        )


# ---------------------------------------------------------------------------- arguments


def test_inputs_unchanged(submission, rng):
    """A bottom-right call leaves q, k and v as they were."""
    # inputs only: bottom-right values, fewer queries than keys, are checked by test_fewer_queries_than_keys
    q, k, v = qkv(rng, (2, 3), 70, 90, 16, 8)
    out = call_unchanged(
        submission.sliding_window_attention,
        q,
        k,
        v,
        12,
        names=("q", "k", "v", "window"),
        what="sliding_window_attention",
        hint="the caller keeps using q, k and v (a KV cache, the next layer): scale and mask new tensors "
        "(q * scale, scores.masked_fill(...)), never with *=, or a trailing-underscore method on the ones "
        "given; q.float() is q itself when q is float32",
        align="bottom_right",
    )
    expect(isinstance(out, torch.Tensor), "sliding_window_attention must return a torch.Tensor")


@pytest.mark.parametrize(
    "function, n_q, n_k, window, align",
    [
        pytest.param("sliding_window_attention", 4, 4, 0, "top_left", id="attention-window-0"),
        pytest.param("sliding_window_attention", 4, 6, 2, "BOTTOM_RIGHT", id="attention-uppercase-align"),
        pytest.param("sliding_window_attention", 6, 4, 2, "top_left", id="attention-more-queries-top-left"),
        pytest.param("sliding_window_attention", 0, 4, 2, "bottom_right", id="attention-no-queries"),
        pytest.param("window_mask", 4, 4, 0, "top_left", id="mask-window-0"),
        pytest.param("window_mask", 4, 6, 2, "lower_right", id="mask-unknown-align"),
    ],
)
def test_invalid_arguments_raise(submission, rng, function, n_q, n_k, window, align):
    """window < 1, an unknown align, and anything but 1 <= n_q <= n_k raise ValueError."""
    if function == "window_mask":
        args = (n_q, n_k, window)
    else:
        q, k, v = qkv(rng, (2,), n_q, n_k, 8, 8)
        args = (q, k, v, window)
    try:
        getattr(submission, function)(*args, align=align)
    except ValueError:
        return
    pytest.fail(
        f"{function} returned normally with window={window}, align={align!r}, n_q={n_q}, n_k={n_k}; "
        "it must raise ValueError"
    )


# ---------------------------------------------------------------------------- growth with T

# One batch, 2 heads, d = 64, window 64, top-left, at T = 512, 1024, 2048 (the sizes are in
# exercise.toml). Measured: the reference's largest tensor is its output (b = 1.0) and its matmul
# FLOPs grow with b = 1.04; gathering the windows with unfold allocates a (1, 2, T, 64, 64) copy
# (b = 1.0); the full (T, T) scores give b = 2.0 on both checks; blocks of queries against every
# key give b = 1.0 in memory and 2.0 in FLOPs.
PERF_WINDOW = 64


def perf_call(rng, n):
    q, k, v = qkv(rng, (1, 2), n, n, 64, 64)
    return Call("sliding_window_attention", q, k, v, PERF_WINDOW)


@pytest.mark.performance
def test_memory_grows_linearly(perf):
    """The largest tensor one call allocates grows linearly with the length (window fixed at 64)."""
    perf.scaling(
        "memory",
        perf_call,
        hint="a tensor with one entry per (query, key) pair was allocated (scores, weights or a bool "
        "mask): score each block of queries against only the keys its windows reach, or gather each "
        "query's w keys, and build masks from the block's own positions",
    )


@pytest.mark.performance
def test_compute_grows_linearly(perf):
    """The matmul FLOPs of one call grow linearly with the length (window fixed at 64)."""
    perf.scaling(
        "compute",
        perf_call,
        hint="some queries were scored against keys outside their reach: a block of queries at "
        "positions s .. s + B - 1 needs only the keys s - w + 1 .. s + B - 1",
    )
