"""Hidden tests for online-softmax: random shapes and block sizes against torch's own softmax and
attention, -inf and huge logits, empty key sets, half precision, merging partial results, causality,
and the memory and speed of the blocked forward pass."""

import math

import numpy as np
import pytest
import torch

from grader.testing import (
    Call,
    Seq,
    assert_causal,
    assert_close,
    assert_invariant,
    call_unchanged,
    dtype_params,
    expect,
    shrink,
)

INF = float("inf")
LN2 = math.log(2.0)
NAN_HINT = (
    "a running max of -inf (nothing seen yet, or no key at all) makes exp(-inf - (-inf)) = NaN and "
    "0 / 0 = NaN: subtract 0 instead of the max while it is -inf, and give a row with nothing in it "
    "zeros (and lse = -inf)"
)
RESCALE_HINT = (
    "when a block raises the running max from m to m', everything summed so far was relative to m: "
    "multiply the running sum (and the running output) by exp(m - m') before adding the new block"
)


# Expected values are computed in float64 and rounded once to the output's dtype. A correct
# result, computed in float32 or better and rounded once, is within one unit in the last place
# of that: rtol = the dtype's epsilon, plus float32's own atol for entries near zero. Computing
# in float16 or bfloat16 instead is off by several units (tens for attention).
HALF_EPS = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}
# lse is a float32 computed in float32 whatever the inputs' dtype: log(l) carries the rounding
# of a sum of exponentials, which these bounds cover with a wide margin (float32 code measured
# within 3e-6 of float64 on these tests, lse up to about 10); an lse computed or rounded in
# float16 or bfloat16 is not.
LSE_TOLERANCE = {"rtol": 1e-5, "atol": 1e-4}


def out_tolerance(dtype):
    """rtol and atol for an output of `dtype` against the float64 result rounded to `dtype`."""
    if dtype in HALF_EPS:
        return {"rtol": HALF_EPS[dtype], "atol": 1e-5}
    return {}  # float32: its default tolerance (rtol 1.3e-6, atol 1e-5)


def randn(rng, *shape, dtype=torch.float32, scale=1.0):
    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32) * np.float32(scale))
    return x.to(dtype)


def qkv(rng, lead, n_q, n_k, d, d_v, dtype=torch.float32, scale=1.0):
    return (
        randn(rng, *lead, n_q, d, dtype=dtype, scale=scale),
        randn(rng, *lead, n_k, d, dtype=dtype, scale=scale),
        randn(rng, *lead, n_k, d_v, dtype=dtype),
    )


# ----------------------------------------------------------------------------- trusted oracles


def allowed_keys(n_q, n_k, causal, shift=0):
    """Bool (n_q, n_k): True where query i may attend key j (j <= i + shift when causal)."""
    if not causal:
        return torch.ones(n_q, n_k, dtype=torch.bool)
    i = torch.arange(n_q).unsqueeze(1)
    j = torch.arange(n_k).unsqueeze(0)
    return j <= i + shift


def scores(q, k, allowed=None, scale=None):
    """Scaled, masked scores in float64."""
    s = (
        q.double()
        @ k.double().transpose(-2, -1)
        * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    )
    return s if allowed is None else s.masked_fill(~allowed, -INF)


def attention(q, k, v, allowed=None, scale=None):
    """(out, lse) in float64 from the whole score matrix; rows with no key: out 0, lse -inf."""
    s = scores(q, k, allowed, scale)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.nan_to_num(torch.exp(s - lse.unsqueeze(-1)), nan=0.0)
    return p @ v.double(), lse


def expected_flash(q, k, v, causal):
    """What flash_attention_forward must return, computed in float64 from the whole score matrix
    (top-left causal, as torch's is_causal): out rounded to the dtype of q, lse to float32."""
    out, lse = attention(q, k, v, allowed_keys(q.shape[-2], k.shape[-2], causal))
    return out.to(q.dtype), lse.float()


def blocked(s, v, block_k, rescale_l=True, rescale_acc=True):
    """The blocked recurrence over key blocks on precomputed scores (float64), with the rescaling
    of the running sum and of the running output optionally left out (a common mistake)."""
    lead = s.shape[:-1]
    m = torch.full(lead, -INF, dtype=torch.float64)
    denom = torch.zeros(lead, dtype=torch.float64)
    acc = torch.zeros(*lead, v.shape[-1], dtype=torch.float64)
    for ks in range(0, s.shape[-1], block_k):
        sb = s[..., ks : ks + block_k]
        m_new = torch.maximum(m, sb.amax(-1))
        safe = torch.where(m_new == -INF, 0.0, m_new)
        alpha = torch.exp(m - safe)
        p = torch.exp(sb - safe.unsqueeze(-1))
        denom = (alpha * denom if rescale_l else denom) + p.sum(-1)
        acc = (alpha.unsqueeze(-1) * acc if rescale_acc else acc) + p @ v.double()[..., ks : ks + block_k, :]
        m = m_new
    return acc / torch.where(denom > 0, denom, 1.0).unsqueeze(-1), m + torch.log(denom)


def flash_mistakes(q, k, v, causal, block_k):
    """(out, lse) of likely mistakes, to name the one a submission made."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    allowed = allowed_keys(n_q, n_k, causal)
    s = scores(q, k, allowed)
    dtype = q.dtype
    out_of = {
        "running sum and output not rescaled when the max changes? " + RESCALE_HINT: blocked(
            s, v, block_k, rescale_l=False, rescale_acc=False
        ),
        "running output not rescaled when the max changes? rescale acc by exp(m - m') as well as the "
        "running sum": blocked(s, v, block_k, rescale_acc=False),
        "running sum not rescaled when the max changes? rescale l by exp(m - m') as well as the running "
        "output": blocked(s, v, block_k, rescale_l=False),
        "forgot the 1/sqrt(d) scale on the scores?": attention(q, k, v, allowed, scale=1.0),
    }
    if causal:
        out_of["causal mask hides the diagonal? key j is allowed for j <= i, not j < i"] = attention(
            q, k, v, allowed_keys(n_q, n_k, True, shift=-1)
        )
        out_of["is_causal ignored?"] = attention(q, k, v)
        if n_q != n_k:
            out_of["causal mask aligned bottom-right? is_causal here is top-left: key j <= query i"] = (
                attention(q, k, v, allowed_keys(n_q, n_k, True, shift=n_k - n_q))
            )
    return {label: (o.to(dtype), lse.float()) for label, (o, lse) in out_of.items()}


def lse_mistakes(q, k, causal):
    """lse in the wrong form."""
    allowed = allowed_keys(q.shape[-2], k.shape[-2], causal)
    s = scores(q, k, allowed)
    lse = torch.logsumexp(s, dim=-1)
    return {
        "lse is the running max? lse = m + log(l), the log of the whole sum": s.amax(-1).float(),
        "lse in base 2? return the natural log: ln(sum exp(s)) = m + ln(l)": (lse / LN2).float(),
        "lse is log(l) without the max? l was summed relative to m: lse = m + log(l)": (
            lse - s.amax(-1)
        ).float(),
        "lse of the unscaled scores? lse is over the scaled scores q.k / sqrt(d)": torch.logsumexp(
            scores(q, k, allowed, scale=1.0), dim=-1
        ).float(),
    }


def call_flash(submission, q, k, v, **kwargs):
    result = submission.flash_attention_forward(q, k, v, **kwargs)
    expect(
        isinstance(result, tuple) and len(result) == 2,
        "flash_attention_forward must return a tuple (out, lse)",
    )
    return result


def check_flash(result, q, k, v, causal, block_k, *, hint=""):
    out, lse = result
    expected_out, expected_lse = expected_flash(q, k, v, causal)
    mistakes = flash_mistakes(q, k, v, causal, block_k)
    assert_close(
        out,
        expected_out,
        **out_tolerance(q.dtype),
        hint=hint,
        misconceptions={label: o for label, (o, _) in mistakes.items()},
    )
    assert_close(
        lse,
        expected_lse,
        what="lse",
        **LSE_TOLERANCE,
        hint=hint,
        misconceptions={**lse_mistakes(q, k, causal), **{label: s for label, (_, s) in mistakes.items()}},
    )


# ----------------------------------------------------------------------------- online_softmax


def streamed_no_rescale(x, block):
    """online softmax whose running sum is never rescaled when the max changes."""
    x = x.double()
    m = torch.full(x.shape[:-1], -INF, dtype=torch.float64)
    denom = torch.zeros(x.shape[:-1], dtype=torch.float64)
    for start in range(0, x.shape[-1], block):
        xb = x[..., start : start + block]
        m = torch.maximum(m, xb.amax(-1))
        denom = denom + torch.exp(xb - m.unsqueeze(-1)).sum(-1)
    return torch.exp(x - m.unsqueeze(-1)) / denom.unsqueeze(-1)


def softmax_mistakes(x, block):
    blocks = torch.split(x.double(), block, dim=-1)
    return {
        "running sum not rescaled when the max changes? " + RESCALE_HINT: streamed_no_rescale(x, block).to(
            x.dtype
        ),
        "each block normalised on its own? the softmax runs over the whole row: only the max and the "
        "sum are gathered block by block": torch.cat([torch.softmax(b, -1) for b in blocks], -1).to(x.dtype),
        "softmax over the wrong dimension? it is over the last one": torch.softmax(x.double(), 0).to(x.dtype),
    }


def test_online_softmax_random(submission, seed):
    """online_softmax on random rows of random length, in blocks of random size, against torch.softmax."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        x = randn(rng, sizes["rows"], sizes["n"], scale=3.0)
        block = sizes["block"]
        assert_close(
            submission.online_softmax(x, block),
            torch.softmax(x.double(), -1).float(),
            misconceptions=softmax_mistakes(x, block),
        )

    shrink(check, {"rows": 6, "n": 45, "block": 7}, seed=seed)


@pytest.mark.parametrize(
    "lead, n",
    [
        pytest.param((), 20, id="one-row"),
        pytest.param((3, 5), 33, id="two-leading-dims"),
        pytest.param((2, 2, 2), 8, id="three-leading-dims"),
    ],
)
def test_online_softmax_block_sizes(submission, rng, lead, n):
    """The same softmax whatever the block size: 1, ragged sizes, the whole row, more than the row."""
    x = randn(rng, *lead, n, scale=2.0)
    assert_invariant(
        submission.online_softmax,
        [x],
        {f"block={b}": {"block": b} for b in (1, 3, 7, n, n + 5)},
        expected=torch.softmax(x.double(), -1).float(),
        hint="the softmax must not depend on the block size: rescale the running sum whenever the max "
        "changes, and handle a ragged last block, block = 1 and a block longer than the row",
    )


def test_online_softmax_increasing_rows(submission):
    """Rows that increase, so that every block raises the running max."""
    x = torch.linspace(-4.0, 6.0, 30).repeat(3, 1)
    assert_close(
        submission.online_softmax(x, 4),
        torch.softmax(x.double(), -1).float(),
        hint=RESCALE_HINT,
        misconceptions=softmax_mistakes(x, 4),
    )


def test_online_softmax_large_logits(submission, rng):
    """Logits near 1e4: exp(1e4) overflows float32, exp(x - max) does not."""
    x = 1e4 + randn(rng, 4, 50, scale=3.0)
    x[1] = -1e4 + randn(rng, 50, scale=3.0)
    assert_close(
        submission.online_softmax(x, 8),
        torch.softmax(x.double(), -1).float(),
        hint="subtract the running max before exponentiating: exp(1e4) is inf in float32",
    )


def test_online_softmax_masked(submission, rng):
    """Masked logits (-inf): a first block that is all -inf, -inf in the middle, a row of only -inf."""
    x = randn(rng, 4, 12)
    x[0, :6] = -INF  # with block 3: two whole blocks of -inf while the running max is still -inf
    x[1, 4:9] = -INF  # -inf once the max is finite
    x[2, :] = -INF  # nothing to attend to: zeros
    x[3, ::2] = -INF
    expected = torch.nan_to_num(torch.softmax(x.double(), -1), nan=0.0).float()
    for block in (3, 1):
        assert_close(
            submission.online_softmax(x, block),
            expected,
            what=f"online_softmax(x, block={block}) of rows with -inf",
            hint=NAN_HINT,
        )


@pytest.mark.parametrize("dtype", dtype_params())
def test_online_softmax_dtypes(submission, rng, dtype):
    """Half-precision input: the output has the input's dtype, within one rounding of the exact softmax."""
    x = randn(rng, 32, 128, dtype=dtype, scale=3.0)
    expected = torch.softmax(x.double(), -1).to(dtype)
    assert_close(
        submission.online_softmax(x, 5),
        expected,
        **out_tolerance(dtype),
        hint="the output has the input's dtype; compute the sums in float32 for float16 and bfloat16",
        misconceptions={"returned float32? the output has the input's dtype": expected.float()},
    )


# ----------------------------------------------------------------------------- flash_attention_forward


@pytest.mark.parametrize("causal", [pytest.param(False, id="full"), pytest.param(True, id="causal")])
def test_flash_matches_torch(submission, seed, causal):
    """Random inputs and ragged tiles: out and lse against attention computed in float64."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        q, k, v = qkv(rng, (2, sizes["heads"]), sizes["n_q"], sizes["n_k"], sizes["d"], sizes["d_v"])
        result = call_flash(
            submission, q, k, v, block_q=sizes["block_q"], block_k=sizes["block_k"], is_causal=causal
        )
        check_flash(result, q, k, v, causal, sizes["block_k"])

    start = {"heads": 3, "n_q": 37, "n_k": 45, "d": 16, "d_v": 8, "block_q": 8, "block_k": 6}
    shrink(check, start, seed=seed)


@pytest.mark.parametrize("causal", [pytest.param(False, id="full"), pytest.param(True, id="causal")])
def test_flash_block_sizes(submission, rng, causal):
    """The same (out, lse) however the work is tiled: 1x1 tiles, ragged tiles, one tile for everything."""
    n_q, n_k = 13, 17
    q, k, v = qkv(rng, (2, 2), n_q, n_k, 8, 8)
    tiles = [(1, 1), (1, n_k), (n_q, 1), (4, 5), (5, 4), (n_q, n_k), (64, 64)]
    assert_invariant(
        lambda *args, **kwargs: call_flash(submission, *args, **kwargs),
        [q, k, v],
        {
            f"block_q={bq}, block_k={bk}": {"block_q": bq, "block_k": bk, "is_causal": causal}
            for bq, bk in tiles
        },
        expected=expected_flash(q, k, v, causal),
        rtol=1e-5,
        atol=1e-5,
        what="(out, lse)",
        hint="(out, lse) must not depend on the tiling: rescale the running sum and output whenever the "
        "max changes, return lse = m + log(l), and handle ragged edge tiles, blocks of 1 and blocks "
        "longer than the sequence",
    )


@pytest.mark.parametrize(
    "n_q, n_k",
    [
        pytest.param(24, 24, id="square"),
        pytest.param(9, 30, id="fewer-queries"),
        pytest.param(30, 9, id="more-queries"),
    ],
)
def test_flash_causal(submission, rng, n_q, n_k):
    """is_causal=True is top-left (key j for query i when j <= i); no query sees a later key."""
    q, k, v = qkv(rng, (2, 2), n_q, n_k, 16, 16)
    result = call_flash(submission, q, k, v, block_q=4, block_k=8, is_causal=True)
    check_flash(result, q, k, v, True, 8)

    def joined(*args):  # out and lse side by side, so one check covers both
        out, lse = call_flash(submission, *args, block_q=4, block_k=8, is_causal=True)
        return torch.cat([out, lse.unsqueeze(-1).to(out.dtype)], dim=-1)

    assert_causal(
        joined,
        [Seq(q), Seq(k), Seq(v)],
        rng=rng,
        rtol=1e-5,
        atol=1e-5,
        what="the output and lse",
        hint="a query at position i may use the keys and values at positions j <= i only",
    )


@pytest.mark.parametrize("causal", [pytest.param(False, id="full"), pytest.param(True, id="causal")])
def test_flash_lse(submission, rng, causal):
    """lse is the natural-log log-sum-exp of the scaled, masked scores, one float32 per query."""
    q, k, v = qkv(rng, (3,), 10, 14, 16, 4, scale=2.0)
    _, lse = call_flash(submission, q, k, v, block_q=3, block_k=4, is_causal=causal)
    _, expected = expected_flash(q, k, v, causal)
    assert_close(lse, expected, what="lse", **LSE_TOLERANCE, misconceptions=lse_mistakes(q, k, causal))


@pytest.mark.parametrize("causal", [pytest.param(False, id="full"), pytest.param(True, id="causal")])
def test_flash_large_logits(submission, rng, causal):
    """Scores up to 1e4: exp of a raw score overflows, exp(score - running max) does not."""
    signs = torch.from_numpy(rng.choice(np.float32([-1.0, 1.0]), size=(2, 12, 16)))
    q = 50.0 * signs  # scores q.k / 4 are multiples of 1250 up to 50 * 50 * 16 / 4 = 1e4, exact in float32
    k = 50.0 * torch.from_numpy(rng.choice(np.float32([-1.0, 1.0]), size=(2, 20, 16)))
    k[:, :6] = q[:, :6]  # some keys line up with a query: scores of 1e4
    v = randn(rng, 2, 20, 8)
    result = call_flash(submission, q, k, v, block_q=5, block_k=6, is_causal=causal)
    check_flash(result, q, k, v, causal, 6, hint="subtract the running max before exponentiating")


@pytest.mark.parametrize("causal", [pytest.param(False, id="full"), pytest.param(True, id="causal")])
def test_flash_no_keys(submission, rng, causal):
    """No keys at all (n_k = 0): nothing to attend to, so out is 0 and lse is -inf, never NaN."""
    q = randn(rng, 2, 3, 5, 8)
    k, v = torch.zeros(2, 3, 0, 8), torch.zeros(2, 3, 0, 6)
    out, lse = call_flash(submission, q, k, v, block_q=2, block_k=4, is_causal=causal)
    assert_close(out, torch.zeros(2, 3, 5, 6), hint=NAN_HINT)
    assert_close(lse, torch.full((2, 3, 5), -INF), what="lse", hint=NAN_HINT)


@pytest.mark.parametrize("dtype", dtype_params())
def test_flash_dtypes(submission, rng, dtype):
    """out has the input's dtype (computed in float32 for float16 and bfloat16); lse is float32."""
    q, k, v = qkv(rng, (2, 2), 20, 20, 32, 16, dtype=dtype, scale=2.0)
    out, lse = call_flash(submission, q, k, v, block_q=8, block_k=8, is_causal=True)
    expected_out, expected_lse = expected_flash(q, k, v, True)
    assert_close(
        out,
        expected_out,
        **out_tolerance(dtype),
        hint="out has the dtype of q; for float16 and bfloat16 compute in float32 and cast only the "
        "result back",
        misconceptions={"returned float32? out has the dtype of q": expected_out.float()},
    )
    assert_close(
        lse,
        expected_lse,
        what="lse",
        **LSE_TOLERANCE,
        hint="lse is computed and returned in float32 whatever the input's dtype",
        misconceptions={"lse in the input's dtype? it is always float32": expected_lse.to(dtype)},
    )


def test_bad_block_sizes_raise(submission, rng):
    """A block size below 1 raises ValueError."""
    q, k, v = qkv(rng, (), 4, 4, 4, 4)
    for name, call in [
        ("online_softmax(x, block=0)", lambda: submission.online_softmax(q, 0)),
        (
            "flash_attention_forward(..., block_q=0)",
            lambda: submission.flash_attention_forward(q, k, v, block_q=0, block_k=2),
        ),
        (
            "flash_attention_forward(..., block_k=0)",
            lambda: submission.flash_attention_forward(q, k, v, block_q=2, block_k=0),
        ),
    ]:
        try:
            call()
        except ValueError:
            continue
        pytest.fail(f"{name} returned normally; it must raise ValueError")


# ----------------------------------------------------------------------------- merge_partials


def partials(rng, lead, n_q, cuts, d, d_v, scale=1.0):
    """q, the full key set, and (out, lse) of attention over each slice of the keys [cuts[i], cuts[i+1])."""
    n_k = cuts[-1]
    q, k, v = qkv(rng, lead, n_q, n_k, d, d_v, scale=scale)
    parts = [
        tuple(t.float() for t in attention(q, k[..., a:b, :], v[..., a:b, :]))
        for a, b in zip(cuts, cuts[1:], strict=False)
    ]
    full = tuple(t.float() for t in attention(q, k, v))
    return parts, full


def merge_mistakes(a, b):
    (out_a, lse_a), (out_b, lse_b) = a, b
    lse = torch.logaddexp(lse_a, lse_b)
    w_a = torch.exp(lse_a - lse).unsqueeze(-1)
    w_b = torch.exp(lse_b - lse).unsqueeze(-1)
    return {
        "averaged the two outputs? weight each by its share of the mass, exp(lse_part - lse_merged)": (
            (out_a + out_b) / 2,
            lse,
        ),
        "added the two outputs? each is already normalised: weight each by exp(lse_part - lse_merged)": (
            out_a + out_b,
            lse,
        ),
        "weights swapped? out_a is weighted by exp(lse_a - lse)": (w_b * out_a + w_a * out_b, lse),
        "merged lse is the larger of the two? it is log(exp(lse_a) + exp(lse_b))": (
            w_a * out_a + w_b * out_b,
            torch.maximum(lse_a, lse_b),
        ),
        "merged lse is lse_a + lse_b? it is log(exp(lse_a) + exp(lse_b))": (
            w_a * out_a + w_b * out_b,
            lse_a + lse_b,
        ),
    }


def call_merge(submission, a, b):
    result = submission.merge_partials(a[0], a[1], b[0], b[1])
    expect(isinstance(result, tuple) and len(result) == 2, "merge_partials must return a tuple (out, lse)")
    return result


@pytest.mark.parametrize(
    "n_k, cut",
    [
        pytest.param(12, 6, id="halves"),
        pytest.param(15, 2, id="uneven"),
        pytest.param(9, 1, id="one-key-in-a"),
    ],
)
def test_merge_matches_full(submission, rng, n_k, cut):
    """Merging attention over keys [0, cut) and [cut, n_k) gives attention over all n_k keys."""
    (a, b), full = partials(rng, (2, 3), 7, [0, cut, n_k], 16, 8, scale=1.5)
    assert_close(
        call_merge(submission, a, b),
        full,
        rtol=1e-5,
        atol=1e-5,
        what="(out, lse)",
        misconceptions=merge_mistakes(a, b),
    )


def merged(a, b):
    """merge_partials computed in float64 on the given partials: (out, lse) in float64."""
    (out_a, lse_a), (out_b, lse_b) = a, b
    lse = torch.logaddexp(lse_a.double(), lse_b.double())
    safe = torch.where(lse == -INF, 0.0, lse)
    w_a = torch.exp(lse_a.double() - safe).unsqueeze(-1)
    w_b = torch.exp(lse_b.double() - safe).unsqueeze(-1)
    return w_a * out_a.double() + w_b * out_b.double(), lse


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
def test_merge_half_precision_outputs(submission, rng, dtype):
    """Partial outputs in half precision (lse float32): the merged output has their dtype, lse float32."""
    (a, b), _ = partials(rng, (4,), 16, [0, 5, 11], 16, 32)
    a16, b16 = (a[0].to(dtype), a[1]), (b[0].to(dtype), b[1])
    out, lse = call_merge(submission, a16, b16)
    expected_out, expected_lse = merged(a16, b16)
    hint = "the merged output has the dtype of out_a, computed in float32 and rounded once; lse stays float32"
    assert_close(
        out,
        expected_out.to(dtype),
        **out_tolerance(dtype),
        hint=hint,
        misconceptions={"returned float32? out has the dtype of out_a": expected_out.float()},
    )
    assert_close(lse, expected_lse.float(), what="lse", **LSE_TOLERANCE, hint=hint)


def test_merge_associative(submission, rng):
    """merge(merge(a, b), c) == merge(a, merge(b, c)) == attention over all the keys."""
    (a, b, c), full = partials(rng, (2, 2), 6, [0, 4, 9, 16], 8, 8, scale=2.0)
    left = call_merge(submission, call_merge(submission, a, b), c)
    right = call_merge(submission, a, call_merge(submission, b, c))
    assert_close(
        left,
        right,
        rtol=1e-5,
        atol=1e-5,
        what="merge(merge(a, b), c) against merge(a, merge(b, c))",
        hint="merging must not depend on grouping: weight each output by exp(lse_part - lse_merged) "
        "and return lse_merged = log(exp(lse_a) + exp(lse_b))",
    )
    assert_close(
        left, full, rtol=1e-5, atol=1e-5, what="merge(merge(a, b), c) against attention over all keys"
    )


def test_merge_commutative(submission, rng):
    """merge(a, b) == merge(b, a)."""
    (a, b), _ = partials(rng, (3,), 5, [0, 7, 10], 8, 4, scale=2.0)
    assert_close(
        call_merge(submission, a, b),
        call_merge(submission, b, a),
        rtol=1e-6,
        atol=1e-6,
        what="merge(a, b) against merge(b, a)",
        hint="the two partial results play the same role: neither is special",
    )


def test_merge_empty_partial(submission, rng):
    """A partial over no keys (out 0, lse -inf) changes nothing; two of them merge to (0, -inf)."""
    (a,), _ = partials(rng, (2,), 4, [0, 6], 8, 8)
    empty = (torch.zeros(2, 4, 8), torch.full((2, 4), -INF))
    assert_close(call_merge(submission, a, empty), a, what="merge(a, empty)", hint=NAN_HINT)
    assert_close(call_merge(submission, empty, a), a, what="merge(empty, a)", hint=NAN_HINT)
    assert_close(call_merge(submission, empty, empty), empty, what="merge(empty, empty)", hint=NAN_HINT)


def test_merge_large_lse(submission, rng):
    """Log-sum-exps near 1e4: exp(lse) overflows float32; the merge must not."""
    out_a, out_b = randn(rng, 3, 5, 8), randn(rng, 3, 5, 8)
    lse_a = 1e4 + randn(rng, 3, 5, scale=2.0)
    lse_b = 1e4 + randn(rng, 3, 5, scale=2.0)
    lse = torch.logaddexp(lse_a.double(), lse_b.double())
    out = (
        torch.exp(lse_a - lse).unsqueeze(-1) * out_a.double()
        + torch.exp(lse_b - lse).unsqueeze(-1) * out_b.double()
    )
    assert_close(
        call_merge(submission, (out_a, lse_a), (out_b, lse_b)),
        (out.float(), lse.float()),
        rtol=2e-3,  # a float32 lse near 1e4 is only known to about 1e-3
        atol=2e-3,
        what="(out, lse)",
        hint="exp(1e4) is inf in float32: work with differences, exp(lse_a - lse_merged), and compute "
        "lse_merged as max + log(exp(lse_a - max) + exp(lse_b - max)) (torch.logaddexp)",
    )


def test_flash_then_merge(submission, rng):
    """Split-KV: flash over each half of the keys, merged, equals flash over all of them."""
    q, k, v = qkv(rng, (2, 2), 11, 26, 16, 8)
    h = 10
    first = call_flash(submission, q, k[..., :h, :], v[..., :h, :], block_q=4, block_k=4)
    second = call_flash(submission, q, k[..., h:, :], v[..., h:, :], block_q=4, block_k=4)
    out, lse = call_merge(submission, first, second)
    expected_out, expected_lse = expected_flash(q, k, v, False)
    assert_close(out, expected_out, what="out of the merged halves")
    assert_close(lse, expected_lse, what="lse of the merged halves", **LSE_TOLERANCE)


# ----------------------------------------------------------------------------- inputs

UNCHANGED_HINT = (
    "the caller keeps using its tensors (the next tile, a KV cache, the other partial): compute new "
    "ones (x - m, q * scale, w * out), never with -=, *= or a trailing-underscore method on the ones "
    "given, and mind that .float() of a float32 tensor is that same tensor"
)


def softmax_inputs(rng):
    x = randn(rng, 4, 21, scale=3.0)
    x[1, :5] = -INF
    x[2, 7:] = -INF
    return "online_softmax", (x,), ("x",), {"block": 4}


def flash_inputs(rng):
    kwargs = {"block_q": 4, "block_k": 3, "is_causal": True}
    return "flash_attention_forward", qkv(rng, (2,), 9, 11, 8, 4), ("q", "k", "v"), kwargs


def merge_inputs(rng):
    (a, b), _ = partials(rng, (2,), 5, [0, 4, 9], 8, 4, scale=2.0)
    return "merge_partials", (*a, *b), ("out_a", "lse_a", "out_b", "lse_b"), {}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(softmax_inputs, id="online_softmax"),
        pytest.param(flash_inputs, id="flash_attention_forward"),
        pytest.param(merge_inputs, id="merge_partials"),
    ],
)
def test_inputs_unchanged(submission, rng, make):
    """Each function leaves the tensors it is given as they were."""
    # inputs only: the values by test_online_softmax_masked, test_flash_causal, test_merge_matches_full
    name, args, names, kwargs = make(rng)
    call_unchanged(getattr(submission, name), *args, names=names, what=name, hint=UNCHANGED_HINT, **kwargs)


# ----------------------------------------------------------------------------- performance


def check_measured(actual, expected):
    """A measured call's (out, lse) against the reference's, with the correctness tests' tolerances
    (out: float32's default, lse: LSE_TOLERANCE), so that a slow but correct call is never called wrong."""
    expect(
        isinstance(actual, tuple | list) and len(actual) == 2,
        "flash_attention_forward must return a tuple (out, lse)",
    )
    assert_close(actual[0], expected[0], what="out of a measured call", **out_tolerance(expected[0].dtype))
    assert_close(actual[1], expected[1], what="lse of a measured call", **LSE_TOLERANCE)


# Memory: one head of 1024 queries and keys, d = 64, tiles of 128 x 128. The reference's largest
# allocation is its (1024, 64) output (256 KiB); a full score matrix is 4 MiB (16x), a full boolean
# causal mask 1 MiB (4x). Keeping all 1024 queries at once and streaming over keys of 128 costs
# 512 KiB (2x) and passes. (Larger sizes make the check slow for a loop over single positions,
# which the speed check rejects anyway.)
MEMORY_N, MEMORY_D, MEMORY_BLOCK = 1024, 64, 128


@pytest.mark.performance
def test_memory(perf):
    """No allocation of an n_q x n_k matrix: the largest tensor allocated stays near the output's size."""

    def make(rng):
        q, k, v = qkv(rng, (1,), MEMORY_N, MEMORY_N, MEMORY_D, MEMORY_D)
        return Call(
            "flash_attention_forward", q, k, v, block_q=MEMORY_BLOCK, block_k=MEMORY_BLOCK, is_causal=True
        )

    perf.measure(
        "memory",
        make,
        check=check_measured,
        hint="an (n_q, n_k) tensor was allocated (scores, weights, or a full causal mask): work one "
        "(block_q, block_k) tile at a time, and build each tile's mask from its own positions",
    )


# Speed: 2 heads of 512 positions, no mask, tiles of 128 (the reference spends about 2.5 ms per
# call). A loop over single query positions takes about 13x as long; honest variants (einsum,
# torch.where, another loop order) stay within 1.2x. (With is_causal the spread of honest variants
# is wider: not skipping the tiles above the diagonal alone costs 2x.)
@pytest.mark.performance
def test_speed(perf):
    """The blocked forward pass against the reference's CPU time, on attention over 512 positions."""

    def make(rng):
        q, k, v = qkv(rng, (1, 2), 512, 512, 64, 64)
        return Call("flash_attention_forward", q, k, v, block_q=128, block_k=128)

    perf.measure(
        "speed",
        make,
        check=check_measured,
        hint="a Python loop over single positions? loop over blocks only, and do each tile with a few "
        "tensor ops",
    )
