"""Hidden tests for causal-masking: random inputs against the reference and against torch's own
attention, every alignment and shape, masks, empty rows, half precision, leakage, and speed."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # trusted side only: submissions may not call it

from grader.testing import Call, assert_close, call_unchanged, expect

OTHER = {"top_left": "bottom_right", "bottom_right": "top_left"}
ALIGNS = [pytest.param("top_left", id="top-left"), pytest.param("bottom_right", id="bottom-right")]
AFTER_SOFTMAX = "masked after the softmax? masked keys must be excluded before it, so the weights sum to 1"
EMPTY_ROW_NAN = (
    "a query with no allowed key has a row of -inf scores, and softmax of that row is 0/0 = NaN: "
    "give such rows a zero output"
)
EMPTY_ROW_FILL = (
    "a finite fill such as -1e9 gives a query with no allowed key equal weights on every key, so its "
    "row is the average of the values: give such rows a zero output"
)
EMPTY_ROW_LIKELY = (
    "likely the rows of queries with no allowed key: each must be a zero row (not NaN, not an average "
    "of the values)"
)


def empty_row_hint(got):
    """The empty-row hint that matches what the output shows: NaN, or (without NaN) a guess."""
    if isinstance(got, torch.Tensor) and got.is_floating_point() and bool(torch.isnan(got).any()):
        return EMPTY_ROW_NAN
    return EMPTY_ROW_LIKELY


def finite_fill(reference, q, k, v, mask=None, is_causal=False, align="top_left"):
    """What a -1e9 fill instead of -inf computes: a query with no allowed key averages every value."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    scores = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(q.shape[-1])
    allowed = torch.ones(n_q, n_k, dtype=torch.bool)
    if is_causal:
        allowed = reference.causal_mask(n_q, n_k, align=align)
    if mask is not None:
        allowed = allowed & mask
    weights = torch.softmax(scores.masked_fill(~allowed, -1e9), dim=-1)
    return (weights @ v.double()).to(q.dtype)


# A correct result is computed in float32 (or better) and rounded to the output dtype once, so it
# is within one unit in the last place of the exact result rounded the same way: rtol = the
# dtype's epsilon, plus float32's own atol for entries near zero. Computing in half precision
# is off by tens of units in the last place (bfloat16 computed in bfloat16: over 100).
HALF_EPS = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def tolerance_for(dtype):
    """rtol and atol for an output of `dtype` against the float64 oracle rounded to `dtype`."""
    if dtype in HALF_EPS:
        return {"rtol": HALF_EPS[dtype], "atol": 1e-5}
    return {}  # float32: its default tolerance (rtol 1.3e-6, atol 1e-5)


def oracle(reference, q, k, v, **kwargs):
    """The reference computed in float64 on the same inputs, rounded once to the dtype of q: a
    correct submission at least as precise as the reference is as close to it as the reference."""
    exact = reference.scaled_dot_product_attention(q.double(), k.double(), v.double(), **kwargs)
    return exact.to(q.dtype)


def randn(rng, *shape, dtype=torch.float32, scale=1.0):
    x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))
    return x.to(dtype)


def qkv(rng, lead, n_q, n_k, d, d_v, dtype=torch.float32):
    return (
        randn(rng, *lead, n_q, d, dtype=dtype),
        randn(rng, *lead, n_k, d, dtype=dtype),
        randn(rng, *lead, n_k, d_v, dtype=dtype),
    )


def offset(align, n_q, n_k):
    return 0 if align == "top_left" else n_k - n_q


def band(n_q, n_k, shift):
    """Bool (n_q, n_k): True where j <= i + shift."""
    i = torch.arange(n_q).unsqueeze(1)
    j = torch.arange(n_k).unsqueeze(0)
    return j <= i + shift


def random_mask(rng, shape, p=0.6):
    """A random bool mask (True = may attend) in which every row allows key 0."""
    mask = torch.from_numpy(rng.random(shape) < p)
    mask[..., 0] = True
    return mask


def after_softmax(q, k, v, allowed):
    """The output of a common mistake: softmax over every key, then zero the masked weights."""
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return (w * allowed) @ v


def causal_mistakes(reference, q, k, v, align, mask=None):
    """Outputs of the likely mistakes for a causal call, to name the one a submission made."""
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    shift = offset(align, n_q, n_k)
    sdpa = reference.scaled_dot_product_attention

    def user(allowed):
        return allowed if mask is None else allowed & mask

    other = OTHER[align]
    found = {
        f"mask aligned {other.replace('_', '-')} where {align.replace('_', '-')} was asked?": sdpa(
            q, k, v, mask=mask, is_causal=True, align=other
        ),
        "diagonal excluded? key j is allowed for j <= i + offset, not j < i + offset": sdpa(
            q, k, v, mask=user(band(n_q, n_k, shift - 1))
        ),
        "mask points to the future? allowed keys are the lower triangle j <= i + offset": sdpa(
            q, k, v, mask=user(~band(n_q, n_k, shift - 1))
        ),
        "mask convention inverted (True should mean may attend)?": sdpa(
            q, k, v, mask=user(~band(n_q, n_k, shift))
        ),
        "is_causal ignored?": sdpa(q, k, v, mask=mask),
        "forgot the 1/sqrt(d) scale?": sdpa(q * math.sqrt(d), k, v, mask=mask, is_causal=True, align=align),
        "scaled by 1/d instead of 1/sqrt(d)?": sdpa(
            q / math.sqrt(d), k, v, mask=mask, is_causal=True, align=align
        ),
        AFTER_SOFTMAX: after_softmax(q, k, v, user(band(n_q, n_k, shift))),
    }
    return found


# ---------------------------------------------------------------------------- causal_mask


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize(
    "n_q, n_k",
    [
        pytest.param(1, 1, id="1x1"),
        pytest.param(6, 6, id="6x6"),
        pytest.param(3, 8, id="3x8-fewer-queries"),
        pytest.param(8, 3, id="8x3-more-queries"),
        pytest.param(1, 7, id="1x7-one-query"),
    ],
)
def test_causal_mask(submission, reference, n_q, n_k, align):
    """causal_mask(n_q, n_k, align=...) for square and rectangular shapes."""
    got = submission.causal_mask(n_q, n_k, align=align)
    shift = offset(align, n_q, n_k)
    other = OTHER[align]
    assert_close(
        got,
        reference.causal_mask(n_q, n_k, align=align),
        what=f"causal_mask({n_q}, {n_k}, align={align!r})",
        misconceptions={
            f"mask aligned {other.replace('_', '-')} where {align.replace('_', '-')} was asked?": band(
                n_q, n_k, offset(other, n_q, n_k)
            ),
            "diagonal excluded? key j is allowed for j <= i + offset, not j < i + offset": band(
                n_q, n_k, shift - 1
            ),
            "mask convention inverted (True should mean may attend)?": ~band(n_q, n_k, shift),
            "mask points to the future? allowed keys are the lower triangle j <= i + offset": ~band(
                n_q, n_k, shift - 1
            ),
        },
    )


def test_causal_mask_device(submission, reference):
    """causal_mask accepts device= and builds the mask there."""
    assert_close(
        submission.causal_mask(4, 6, align="bottom_right", device="cpu"),
        reference.causal_mask(4, 6, align="bottom_right"),
        what="causal_mask(4, 6, align='bottom_right', device='cpu')",
        misconceptions={
            "mask aligned top-left where bottom-right was asked?": band(4, 6, 0),
            "mask points to the future? allowed keys are the lower triangle j <= i + offset": ~band(4, 6, 1),
        },
    )


# ---------------------------------------------------------------------------- attention

SHAPES = [
    pytest.param((), 8, 8, 16, 16, id="no-batch-dims-square"),
    pytest.param((), 5, 9, 16, 16, id="no-batch-dims-fewer-queries"),
    pytest.param((3,), 9, 5, 16, 16, id="one-batch-dim-more-queries"),
    pytest.param((2, 3), 7, 7, 16, 16, id="batch-heads-square"),
    pytest.param((2, 3), 4, 11, 32, 8, id="batch-heads-fewer-queries-dv8"),
    pytest.param((2, 3), 11, 4, 8, 24, id="batch-heads-more-queries-dv24"),
    pytest.param((2, 2, 3), 6, 9, 16, 4, id="three-batch-dims"),
    pytest.param((2, 4), 1, 13, 16, 16, id="one-query-decoding-step"),
]


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("lead, n_q, n_k, d, d_v", SHAPES)
def test_causal_attention(submission, reference, rng, lead, n_q, n_k, d, d_v, align):
    """is_causal=True on random inputs: any leading dims, n_q <, = or > n_k, d_v != d."""
    q, k, v = qkv(rng, lead, n_q, n_k, d, d_v)
    got = submission.scaled_dot_product_attention(q, k, v, is_causal=True, align=align)
    assert_close(
        got,
        oracle(reference, q, k, v, is_causal=True, align=align),
        hint=empty_row_hint(got) if n_q > n_k and align == "bottom_right" else "",
        misconceptions={
            **causal_mistakes(reference, q, k, v, align),
            EMPTY_ROW_FILL: finite_fill(reference, q, k, v, is_causal=True, align=align),
        },
    )


@pytest.mark.parametrize("lead, n_q, n_k, d, d_v", SHAPES[:6])
def test_attention_without_mask(submission, reference, rng, lead, n_q, n_k, d, d_v):
    """No mask and is_causal=False: every query attends every key."""
    q, k, v = qkv(rng, lead, n_q, n_k, d, d_v)
    sdpa = reference.scaled_dot_product_attention
    assert_close(
        submission.scaled_dot_product_attention(q, k, v),
        oracle(reference, q, k, v),
        misconceptions={
            "applied a causal mask though is_causal is False?": sdpa(q, k, v, is_causal=True),
            "forgot the 1/sqrt(d) scale?": sdpa(q * math.sqrt(d), k, v),
            "scaled by 1/d instead of 1/sqrt(d)?": sdpa(q / math.sqrt(d), k, v),
            "softmax over the query axis? each query's weights over the keys must sum to 1": torch.softmax(
                q @ k.transpose(-2, -1) / math.sqrt(d), dim=-2
            )
            @ v,
        },
    )


@pytest.mark.parametrize(
    "n_q, n_k",
    [
        pytest.param(16, 16, id="square"),
        pytest.param(6, 16, id="fewer-queries"),
        pytest.param(16, 6, id="more-queries"),
    ],
)
def test_top_left_matches_torch(submission, reference, rng, n_q, n_k):
    """align="top_left" with is_causal=True equals torch's F.scaled_dot_product_attention(is_causal=True)."""
    q, k, v = qkv(rng, (2, 4), n_q, n_k, 32, 32)
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True).float()
    assert_close(
        submission.scaled_dot_product_attention(q, k, v, is_causal=True),
        expected,
        what="the output (checked against torch's own attention)",
        misconceptions=causal_mistakes(reference, q, k, v, "top_left"),
    )


@pytest.mark.parametrize(
    "n_q, n_k", [pytest.param(16, 16, id="square"), pytest.param(5, 16, id="fewer-queries")]
)
def test_bottom_right_matches_torch(submission, reference, rng, n_q, n_k):
    """align="bottom_right" equals torch's attention with the lower-right triangle as its bool mask."""
    q, k, v = qkv(rng, (2, 4), n_q, n_k, 32, 32)
    lower_right = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=n_k - n_q)
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=lower_right)
    assert_close(
        submission.scaled_dot_product_attention(q, k, v, is_causal=True, align="bottom_right"),
        expected.float(),
        what="the output (checked against torch's own attention)",
        misconceptions=causal_mistakes(reference, q, k, v, "bottom_right"),
    )


@pytest.mark.parametrize("new", [pytest.param(1, id="one-new-token"), pytest.param(4, id="four-new-tokens")])
def test_kv_cache_decoding(submission, reference, rng, new):
    """KV-cache decoding: the newest queries over the whole cache (bottom-right) match full attention."""
    q, k, v = qkv(rng, (2, 3), 12, 12, 16, 16)
    full = oracle(reference, q, k, v, is_causal=True)
    latest = q[..., -new:, :]
    assert_close(
        submission.scaled_dot_product_attention(latest, k, v, is_causal=True, align="bottom_right"),
        full[..., -new:, :],
        what=f"attention of the {new} newest queries over the 12 cached keys",
        misconceptions=causal_mistakes(reference, latest, k, v, "bottom_right"),
    )


# ---------------------------------------------------------------------------- user masks

MASK_SHAPES = [
    pytest.param((7, 9), id="one-mask-for-all"),
    pytest.param((2, 1, 7, 9), id="per-batch"),
    pytest.param((2, 3, 7, 9), id="per-batch-and-head"),
    pytest.param((2, 1, 1, 9), id="key-padding"),
]


@pytest.mark.parametrize("mask_shape", MASK_SHAPES)
def test_user_mask(submission, reference, rng, mask_shape):
    """A bool mask broadcastable to (..., n_q, n_k), True = may attend, without is_causal."""
    q, k, v = qkv(rng, (2, 3), 7, 9, 16, 16)
    mask = random_mask(rng, mask_shape)
    sdpa = reference.scaled_dot_product_attention
    assert_close(
        submission.scaled_dot_product_attention(q, k, v, mask=mask),
        oracle(reference, q, k, v, mask=mask),
        misconceptions={
            "mask convention inverted (True should mean may attend)?": sdpa(q, k, v, mask=~mask),
            "mask ignored?": sdpa(q, k, v),
            "applied a causal mask though is_causal is False?": sdpa(q, k, v, mask=mask, is_causal=True),
            AFTER_SOFTMAX: after_softmax(q, k, v, mask),
        },
    )


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("mask_shape", MASK_SHAPES)
def test_mask_and_causal(submission, reference, rng, mask_shape, align):
    """mask and is_causal together: a key is attended only where both allow it."""
    q, k, v = qkv(rng, (2, 3), 7, 9, 16, 16)
    mask = random_mask(rng, mask_shape)
    sdpa = reference.scaled_dot_product_attention
    either = band(7, 9, offset(align, 7, 9)) | mask
    mistakes = {
        "the mask was ignored when is_causal is set? both must apply": sdpa(
            q, k, v, is_causal=True, align=align
        ),
        "is_causal was ignored when a mask is given? both must apply": sdpa(q, k, v, mask=mask),
        "combined with OR? a key is attended only where the mask AND the causal rule allow it": sdpa(
            q, k, v, mask=either
        ),
        "user mask convention inverted (True should mean may attend)?": sdpa(
            q, k, v, mask=~mask, is_causal=True, align=align
        ),
    }
    assert_close(
        submission.scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True, align=align),
        oracle(reference, q, k, v, mask=mask, is_causal=True, align=align),
        misconceptions={**mistakes, **causal_mistakes(reference, q, k, v, align, mask=mask)},
    )


# ---------------------------------------------------------------------------- empty rows


def left_padded(rng):
    """A batch of two sequences of 8, the second left-padded by 3: key padding mask + causal."""
    q, k, v = qkv(rng, (2, 2), 8, 8, 16, 16)
    mask = torch.ones(2, 1, 1, 8, dtype=torch.bool)
    mask[1, ..., :3] = False  # the pad queries 0..2 of sequence 1 may attend nothing
    return (q, k, v), {"mask": mask, "is_causal": True}


def more_queries_bottom_right(rng, dtype=torch.float32):
    """7 queries, 3 keys, bottom-right: queries 0..3 come before every key."""
    return qkv(rng, (2, 2), 7, 3, 16, 16, dtype=dtype), {"is_causal": True, "align": "bottom_right"}


def empty_mask_rows(rng):
    """A user mask with two rows that allow nothing."""
    q, k, v = qkv(rng, (2,), 6, 6, 8, 8)
    mask = random_mask(rng, (2, 6, 6))
    mask[0, 2] = False
    mask[1, 5] = False
    return (q, k, v), {"mask": mask}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(more_queries_bottom_right, id="bottom-right-more-queries-than-keys"),
        pytest.param(empty_mask_rows, id="mask-rows-all-false"),
        pytest.param(left_padded, id="left-padding-and-causal"),
        pytest.param(lambda rng: more_queries_bottom_right(rng, torch.float16), id="float16-bottom-right"),
    ],
)
def test_fully_masked_rows(submission, reference, rng, make):
    """A query with no allowed key gets a zero output row, never NaN."""
    (q, k, v), kwargs = make(rng)
    got = submission.scaled_dot_product_attention(q, k, v, **kwargs)
    sdpa = reference.scaled_dot_product_attention
    expected = oracle(reference, q, k, v, **kwargs)
    mistakes = {EMPTY_ROW_FILL: finite_fill(reference, q, k, v, **kwargs)}
    if q.dtype != torch.float32:
        mistakes["returned float32? the output must have the input's dtype"] = expected.float()
    if "mask" in kwargs and kwargs.get("is_causal"):
        mistakes["is_causal was ignored when a mask is given? both must apply"] = sdpa(
            q, k, v, mask=kwargs["mask"]
        )
        mistakes["the mask was ignored when is_causal is set? both must apply"] = sdpa(
            q, k, v, is_causal=True
        )
    assert_close(got, expected, hint=empty_row_hint(got), misconceptions=mistakes, **tolerance_for(q.dtype))


# ---------------------------------------------------------------------------- half precision

HALF = [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]


@pytest.mark.parametrize(
    "n_k, kwargs",
    [
        pytest.param(24, {"is_causal": True}, id="causal-top-left"),
        pytest.param(40, {"is_causal": True, "align": "bottom_right"}, id="causal-bottom-right"),
        pytest.param(40, {}, id="no-mask"),
    ],
)
@pytest.mark.parametrize("dtype", HALF)
def test_half_precision(submission, reference, rng, dtype, n_k, kwargs):
    """Half-precision inputs give the input dtype, within one rounding of the exact result."""
    q, k, v = qkv(rng, (2, 3), 24, n_k, 64, 32, dtype=dtype)
    expected = oracle(reference, q, k, v, **kwargs)
    assert_close(
        submission.scaled_dot_product_attention(q, k, v, **kwargs),
        expected,
        **tolerance_for(dtype),
        hint="compute the scores, the softmax and the weighted sum in float32, and cast only the result "
        "back to the input's dtype",
        misconceptions={"returned float32? the output must have the input's dtype": expected.float()},
    )


def test_float16_scores_beyond_its_range(submission, reference, rng):
    """float16 inputs whose raw scores q . k exceed 65504, float16's largest value."""
    signs = torch.from_numpy(rng.choice(np.float32([-1.0, 1.0]), size=(2, 10, 64)))
    k = (40 * signs).half()  # q . k reaches 64 * 40 * 40 = 102400 before the 1/8 scale
    q = k.clone()
    v = randn(rng, 2, 10, 16, dtype=torch.float16)
    assert_close(
        submission.scaled_dot_product_attention(q, k, v, is_causal=True),
        oracle(reference, q, k, v, is_causal=True),
        **tolerance_for(torch.float16),
        hint="q @ k^T overflows float16 here (inf, then NaN in the softmax): compute the scores in float32",
    )


# ---------------------------------------------------------------------------- leakage


@pytest.mark.parametrize(
    "align, n_q, n_k",
    [
        pytest.param("top_left", 8, 8, id="top-left-square"),
        pytest.param("top_left", 6, 10, id="top-left-fewer-queries"),
        pytest.param("bottom_right", 8, 8, id="bottom-right-square"),
        pytest.param("bottom_right", 5, 10, id="bottom-right-fewer-queries"),
    ],
)
def test_no_future_leakage(submission, rng, align, n_q, n_k):
    """Changing the keys and values after position i + offset leaves the outputs of queries 0..i unchanged."""
    q, k, v = qkv(rng, (2, 2), n_q, n_k, 16, 16)
    shift = offset(align, n_q, n_k)
    before = submission.scaled_dot_product_attention(q, k, v, is_causal=True, align=align)
    for i in range(n_q):
        first_unseen = i + shift + 1
        if first_unseen >= n_k:
            break
        k2, v2 = k.clone(), v.clone()
        k2[..., first_unseen:, :] = randn(rng, 2, 2, n_k - first_unseen, 16, scale=5.0)
        v2[..., first_unseen:, :] = randn(rng, 2, 2, n_k - first_unseen, 16, scale=5.0)
        after = submission.scaled_dot_product_attention(q, k2, v2, is_causal=True, align=align)
        assert_close(
            after[..., : i + 1, :],
            before[..., : i + 1, :],
            # which query saw the future is the submission's doing: the words stay the same for all
            what="the outputs of the queries before the keys and values that changed",
            hint=f"a query saw the future: with align={align!r}, query i may only use keys j <= i + {shift}, "
            "and masked keys must be removed before the softmax (not after it)",
        )


# ---------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "function, align",
    [
        pytest.param("causal_mask", "bottom-right", id="causal_mask-dash"),
        pytest.param("causal_mask", "BOTTOM_RIGHT", id="causal_mask-uppercase"),
        pytest.param("scaled_dot_product_attention", "lower_right", id="attention-unknown"),
    ],
)
def test_invalid_align_raises(submission, rng, function, align):
    """An align other than "top_left" or "bottom_right" raises ValueError."""
    if function == "causal_mask":
        args = (4, 6)
        kwargs = {"align": align}
    else:
        args = qkv(rng, (2,), 4, 6, 8, 8)
        kwargs = {"align": align, "is_causal": True}
    try:
        getattr(submission, function)(*args, **kwargs)
    except ValueError:
        return
    pytest.fail(f"{function}(..., align={align!r}) returned normally; it must raise ValueError")


def test_inputs_unchanged(submission, rng):
    """scaled_dot_product_attention leaves q, k, v and the mask as they were."""
    q, k, v = qkv(rng, (2, 3), 7, 9, 16, 8)
    mask = random_mask(rng, (2, 1, 7, 9))
    out = call_unchanged(
        submission.scaled_dot_product_attention,
        q,
        k,
        v,
        names=("q", "k", "v"),
        what="scaled_dot_product_attention",
        hint="the caller keeps using q, k, v and the mask (a KV cache, the next layer): scale and mask "
        "new tensors (q * scale, allowed = mask & causal), never with *=, &= or a trailing-underscore "
        "method on the ones given",
        mask=mask,
        is_causal=True,
        align="bottom_right",
    )
    # only the result's type here: the values are checked in test_mask_and_causal (per-batch, bottom-right)
    expect(isinstance(out, torch.Tensor), "scaled_dot_product_attention must return a torch.Tensor")


# ---------------------------------------------------------------------------- speed

# One head of 128 positions: measured on a 2-core machine, a per-row Python loop takes ~16x the
# reference's time here, while vectorised variants (torch.where, einsum with an additive -inf bias,
# a hand-written softmax) stay within ~1.5x, and computing in float64 ~2x. Larger inputs shrink the
# gap: the sandbox hands every allocation over 64 KiB back to the OS, so big score matrices pay
# page faults in every implementation (at (2, 4, 256, 64) the loop is only ~2.7x).
B, H, T, D = 1, 1, 128, 64


@pytest.mark.performance
def test_speed(perf):
    """Causal attention over 128 positions in float32, against the reference's CPU time."""

    def make(rng):
        q, k, v = qkv(rng, (B, H), T, T, D, D)
        return Call("scaled_dot_product_attention", q, k, v, is_causal=True)

    perf.measure(
        "speed",
        make,
        hint="a Python loop over query positions? one matmul for all the scores, mask, softmax, one matmul",
    )
