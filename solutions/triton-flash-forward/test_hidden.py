"""Hidden tests of the FlashAttention forward kernel: random ragged shapes against torch's attention
in float64 and the exact log-sum-exp, rectangular causal shapes, a given scale, long and large-score
rows, argument checks, unchanged inputs, and what the kernels do (bytes, launches, skipped blocks,
speed on a GPU)."""

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # the oracle, on the trusted side only

from grader.testing import Call, assert_close, call_unchanged, compare, expect, shrink

NO_RESCALE = (
    "acc not rescaled? When the max rises, multiply acc by alpha = exp(m_old - m_new), as l is, "
    "before adding p @ v"
)
NORMALISED_IN_LOOP = (
    "normalised inside the loop? Divide acc by l once, after the last key block: the l of an "
    "earlier block is only a partial sum"
)
LSE_BASE2 = (
    "lse in base 2? Store the natural log: (m2 + log2(l)) * ln(2) when m2 and the scores are in base 2"
)
LSE_NO_MAX = "lse without the max? lse = m + log(l), not log(l)"
DIAGONAL_EXCLUDED = (
    "causal mask j < i? Query i attends its own key: keep j <= i (and query 0, seeing nothing, gives NaN)"
)
CAUSAL_IGNORED = "causal ignored? With causal=True query i attends only the keys j <= i"
PADDING_KEYS = (
    "padding keys scored 0? Keys past seq_k are loaded as zeros (other=0.0) and score 0: set their "
    "scores to -inf"
)
BOTTOM_RIGHT = (
    "causal diagonal aligned at the end? Here it is aligned at the start, as torch's is_causal=True: "
    "query i sees keys j <= i, also when seq_q != seq_k"
)
SCALE_IGNORED = (
    "sm_scale ignored? The scores are sm_scale * q . k; 1 / sqrt(head_dim) only when sm_scale is None"
)
NO_MAX = (
    "exp of the raw scores? Subtract the running max before exponentiating: exp(s) overflows float32 "
    "past s = 88"
)
BLOCKS = (16, 32, 64, 128)  # the key block sizes whose mistakes are recognised

# out against the exact (float64) result: TF32 dots on a GPU, float16 operands and one rounding of
# the output all fit, with room; a correct kernel is within about 1e-3
OUT_TOL = {"atol": 5e-3, "rtol": 5e-3}
LSE_TOL = {"atol": 5e-3, "rtol": 1e-3}
DTYPES = {"float32": torch.float32, "float16": torch.float16}


# ---------------------------------------------------------------------------- the oracle


def scores64(q, k, causal, sm_scale=None, shift=0):
    """The scaled and masked scores in float64: key j is kept for query i when j <= i + shift
    (shift 0: aligned at the start, torch's is_causal=True)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else sm_scale
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    if causal:
        n_q, n_k = q.shape[-2], k.shape[-2]
        above = torch.ones(n_q, n_k, dtype=torch.bool).triu(1 + shift)
        s = s.masked_fill(above, float("-inf"))
    return s


def oracle(q, k, v, causal=False, sm_scale=None):
    """torch's attention in float64, cast to q's dtype, and the float64 log-sum-exp as float32."""
    out = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=causal, scale=sm_scale)
    lse = torch.logsumexp(scores64(q, k, causal, sm_scale), dim=-1)
    return out.to(q.dtype), lse.float()


def softmax_out(s, v, dtype):
    """softmax(s) @ v in float64 from given scores (rows of only -inf give NaN, as 0 / 0 does)."""
    return (torch.softmax(s, dim=-1) @ v.double()).to(dtype)


def blocked(q, k, v, causal, block_n, mistake, sm_scale=None):
    """The key-block loop in float64 with one of two mistakes: "no_rescale" (acc never multiplied by
    alpha) or "in_loop" (each block's p @ v divided by the l of that moment, no division at the end)."""
    s = scores64(q, k, causal, sm_scale)
    v = v.double()
    m = torch.full(s.shape[:-1], float("-inf"), dtype=torch.float64)
    l_sum = torch.zeros(s.shape[:-1], dtype=torch.float64)
    acc = torch.zeros(*s.shape[:-1], v.shape[-1], dtype=torch.float64)
    for start in range(0, s.shape[-1], block_n):
        tile = s[..., start : start + block_n]
        m_new = torch.maximum(m, tile.amax(dim=-1))
        alpha = torch.exp(m - m_new)
        p = torch.exp(tile - m_new[..., None])
        l_sum = alpha * l_sum + p.sum(dim=-1)
        pv = p @ v[..., start : start + block_n, :]
        if mistake == "no_rescale":
            acc = acc + pv
        else:
            acc = alpha[..., None] * acc + pv / l_sum[..., None]
        m = m_new
    out = acc / l_sum[..., None] if mistake == "no_rescale" else acc
    return out.to(q.dtype)


def padded_keys(q, k, v, causal, block_n, sm_scale=None):
    """What scoring the padding keys of the last block as 0 (with zero values) gives."""
    pad = -k.shape[-2] % block_n
    shape = (*k.shape[:-2], pad, k.shape[-1])
    k0, v0 = torch.cat([k, k.new_zeros(shape)], -2), torch.cat([v, v.new_zeros(shape)], -2)
    s = scores64(q, k0, causal, sm_scale)
    return softmax_out(s, v0, q.dtype), torch.logsumexp(s, dim=-1).float()


def mistakes(q, k, v, causal, sm_scale=None):
    """The outputs (out, lse) of the likely mistakes, for each usual block size where it matters."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    s = scores64(q, k, causal, sm_scale)
    lse = torch.logsumexp(s, dim=-1)
    out_wrong = {
        NO_RESCALE: [blocked(q, k, v, causal, b, "no_rescale", sm_scale) for b in BLOCKS],
        NORMALISED_IN_LOOP: [blocked(q, k, v, causal, b, "in_loop", sm_scale) for b in BLOCKS],
        PADDING_KEYS: [padded_keys(q, k, v, causal, b, sm_scale)[0] for b in BLOCKS],
    }
    lse_wrong = {
        LSE_BASE2: (lse / math.log(2)).float(),
        LSE_NO_MAX: (lse - s.amax(dim=-1)).float(),
        PADDING_KEYS: [padded_keys(q, k, v, causal, b, sm_scale)[1] for b in BLOCKS],
    }
    if causal:
        if n_q != n_k:  # first: with one query, aligned at the end is also "causal ignored"
            right = scores64(q, k, True, sm_scale, shift=n_k - n_q)
            out_wrong[BOTTOM_RIGHT] = softmax_out(right, v, q.dtype)
            lse_wrong[BOTTOM_RIGHT] = torch.logsumexp(right, dim=-1).float()
        strict = scores64(q, k, True, sm_scale, shift=-1)
        out_wrong[DIAGONAL_EXCLUDED] = softmax_out(strict, v, q.dtype)
        lse_wrong[DIAGONAL_EXCLUDED] = torch.logsumexp(strict, dim=-1).float()
        full = oracle(q, k, v, False, sm_scale)
        out_wrong[CAUSAL_IGNORED], lse_wrong[CAUSAL_IGNORED] = full
    if sm_scale is not None:
        default = oracle(q, k, v, causal)
        out_wrong[SCALE_IGNORED], lse_wrong[SCALE_IGNORED] = default
    return out_wrong, lse_wrong


def name_mistake(actual, candidates, tol):
    """The label of the first candidate output `actual` matches (NaN where the candidate has NaN)."""
    for label, outputs in candidates.items():
        for wrong in outputs if isinstance(outputs, list) else [outputs]:
            try:
                if compare(actual, wrong, equal_nan=True, **tol) is None:
                    return label
            except TypeError:
                continue
    return ""


def check_result(result, q, k, v, causal=False, sm_scale=None, hint=""):
    """(out, lse) against the oracle, each with its tolerance; a matching mistake is named."""
    expect(isinstance(result, tuple) and len(result) == 2, "flash_attention must return a tuple (out, lse)")
    out, lse = result
    expected_out, expected_lse = oracle(q, k, v, causal, sm_scale)
    wrong = functools.cache(lambda: mistakes(q, k, v, causal, sm_scale))  # only once something is off
    out_hint = name_mistake(out, wrong()[0], OUT_TOL) if compare(out, expected_out, **OUT_TOL) else ""
    assert_close(out, expected_out, what="out", hint=out_hint or hint, **OUT_TOL)
    lse_hint = name_mistake(lse, wrong()[1], LSE_TOL) if compare(lse, expected_lse, **LSE_TOL) else ""
    assert_close(lse, expected_lse, what="lse", hint=lse_hint or hint, **LSE_TOL)


def randn(rng, *shape, dtype=torch.float32, scale=1.0):
    x = rng.standard_normal(shape).astype(np.float32) * np.float32(scale)
    return torch.from_numpy(x).to(dtype)


def qkv(rng, batch, heads, seq_q, seq_k, head_dim, dtype=torch.float32, scale=1.0):
    return (
        randn(rng, batch, heads, seq_q, head_dim, dtype=dtype, scale=scale),
        randn(rng, batch, heads, seq_k, head_dim, dtype=dtype, scale=scale),
        randn(rng, batch, heads, seq_k, head_dim, dtype=dtype),
    )


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "dtype, causal",
    [pytest.param("float32", True, id="float32-causal"), pytest.param("float16", False, id="float16-full")],
)
def test_random_shapes(submission, seed, dtype, causal):
    """Random inputs on ragged lengths (up to 2 x 2 heads of 70 positions), against torch's attention."""

    def check(sizes, case_seed):
        rng = np.random.default_rng(case_seed)
        q, k, v = qkv(rng, sizes["batch"], sizes["heads"], sizes["seq"], sizes["seq"], 32, DTYPES[dtype])
        check_result(submission.flash_attention(q, k, v, causal=causal), q, k, v, causal)

    shrink(check, {"batch": 2, "heads": 2, "seq": 70}, seed=seed, budget=4)


@pytest.mark.parametrize("causal", [pytest.param(False, id="full"), pytest.param(True, id="causal")])
@pytest.mark.parametrize(
    "seq_q, seq_k",
    [
        pytest.param(20, 70, id="fewer-queries-20x70"),
        pytest.param(70, 20, id="more-queries-70x20"),
        pytest.param(1, 45, id="one-query-1x45"),
        pytest.param(45, 17, id="more-queries-45x17"),
    ],
)
def test_rectangular(submission, rng, seq_q, seq_k, causal):
    """seq_q != seq_k; causal is aligned at the start (query i sees keys j <= i), as torch's is_causal."""
    q, k, v = qkv(rng, 1, 2, seq_q, seq_k, 16)
    check_result(submission.flash_attention(q, k, v, causal=causal), q, k, v, causal)


@pytest.mark.parametrize(
    "sm_scale", [pytest.param(0.3, id="0.3"), pytest.param(1.0, id="1.0"), pytest.param(0.05, id="0.05")]
)
def test_sm_scale(submission, rng, sm_scale):
    """A given sm_scale multiplies the scores instead of 1 / sqrt(head_dim), also in the lse."""
    q, k, v = qkv(rng, 1, 2, 50, 50, 32, torch.float16)  # float16: exact products, also on a GPU
    check_result(submission.flash_attention(q, k, v, causal=True, sm_scale=sm_scale), q, k, v, True, sm_scale)


@pytest.mark.parametrize(
    "dtype, causal",
    [pytest.param("float32", False, id="float32-full"), pytest.param("float16", True, id="float16-causal")],
)
def test_long_sequence(submission, rng, dtype, causal):
    """200 positions: several key blocks for any block size up to 128, the row max rising in late blocks."""
    q, k, v = qkv(rng, 1, 1, 200, 200, 16)
    u = torch.ones(16) / 4.0  # a unit vector; scores drift up with the key's position j by about 2 j / 200
    q = q + 2 * u
    k = k + (4 * torch.arange(200.0) / 200).view(1, 1, 200, 1) * u
    q, k, v = (t.to(DTYPES[dtype]) for t in (q, k, v))
    check_result(submission.flash_attention(q, k, v, causal=causal), q, k, v, causal)


@pytest.mark.parametrize("head_dim", [pytest.param(64, id="64"), pytest.param(128, id="128")])
def test_larger_head_dim(submission, rng, head_dim):
    """head_dim 64 and 128 in float16 on a ragged length."""
    q, k, v = qkv(rng, 1, 1, 40, 40, head_dim, torch.float16)
    check_result(submission.flash_attention(q, k, v, causal=True), q, k, v, True)


def test_large_scores(submission, rng):
    """Scores in the hundreds (float16 inputs): exp only ever sees s - m <= 0, so nothing overflows."""
    q, k, v = qkv(rng, 1, 2, 40, 40, 16, torch.float16, scale=12.0)
    result = submission.flash_attention(q, k, v)
    check_result(result, q, k, v, hint=NO_MAX)


def test_batch_and_heads_apart(submission, rng):
    """Batch and head are told apart: every (batch, head) attends only its own keys."""
    q, k, v = qkv(rng, 3, 1, 24, 24, 16)
    result = submission.flash_attention(q, k, v)
    check_result(
        result,
        q,
        k,
        v,
        hint="each program must use the (batch, head) of its own program id, with the batch and head strides",
    )


@pytest.mark.parametrize(
    "dtype", [pytest.param("float32", id="float32"), pytest.param("float16", id="float16")]
)
def test_output_types(submission, rng, dtype):
    """out has q's shape and dtype; lse is float32 of shape (batch, heads, seq_q)."""
    q, k, v = qkv(rng, 2, 1, 9, 13, 16, DTYPES[dtype])
    result = submission.flash_attention(q, k, v)
    expect(isinstance(result, tuple) and len(result) == 2, "flash_attention must return a tuple (out, lse)")
    out, lse = result
    expect(
        isinstance(out, torch.Tensor) and out.dtype == DTYPES[dtype] and tuple(out.shape) == (2, 1, 9, 16),
        f"out must be a {dtype} tensor of q's shape (batch, heads, seq_q, head_dim)",
    )
    expect(
        isinstance(lse, torch.Tensor) and lse.dtype == torch.float32 and tuple(lse.shape) == (2, 1, 9),
        "lse must be a float32 tensor of shape (batch, heads, seq_q)",
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda r: qkv(r, 1, 1, 8, 8, 24), id="head-dim-24"),
        pytest.param(lambda r: qkv(r, 1, 1, 8, 8, 8), id="head-dim-8"),
        pytest.param(
            lambda r: (*qkv(r, 1, 1, 8, 8, 16)[:2], qkv(r, 1, 1, 8, 8, 16)[2].half()), id="mixed-dtypes"
        ),
    ],
)
def test_invalid_inputs_raise(submission, rng, make):
    """head_dim other than 16, 32, 64, 128, or inputs of different dtypes, raise ValueError."""
    q, k, v = make(rng)
    try:
        submission.flash_attention(q, k, v)
    except ValueError:
        return
    pytest.fail("flash_attention returned normally (or raised something else); it must raise ValueError")


def test_inputs_unchanged(submission, rng):
    """flash_attention leaves q, k and v as they were."""
    q, k, v = qkv(rng, 1, 2, 37, 37, 16)
    result = call_unchanged(
        submission.flash_attention,
        q,
        k,
        v,
        names=("q", "k", "v"),
        what="flash_attention",
        hint="write only into the tensors you allocate (out, lse), never into q, k or v",
        causal=True,
    )
    # only the result's type here: the values are checked by the other tests
    expect(isinstance(result, tuple) and len(result) == 2, "flash_attention must return a tuple (out, lse)")


# ---------------------------------------------------------------------------- the kernels


def test_kernel_does_the_work(submission, perf, rng):
    """The call launches a Triton kernel that loads at least q, k and v and stores at least out and lse."""
    q, k, v = qkv(rng, 1, 2, 37, 37, 16)
    found = perf.kernel_probe(Call("flash_attention", q, k, v))
    inputs = 3 * q.numel() * q.element_size()
    outputs = q.numel() * q.element_size() + q.numel() // q.shape[-1] * 4
    expect(found["launches"] >= 1, "the call launched no Triton kernel: the work must be done by one")
    expect(
        found["loaded_bytes"] >= inputs,
        "the kernels loaded fewer bytes than q, k and v hold: the kernel must read its inputs itself",
    )
    expect(
        found["stored_bytes"] >= outputs,
        "the kernels stored fewer bytes than out and lse hold: the kernel must write both itself",
    )


def check_measured(actual, expected):
    """A measured call's (out, lse): checked as the correctness tests check them."""
    assert_close(actual[0], expected[0], what="out", **OUT_TOL)
    assert_close(actual[1], expected[1], what="lse", **LSE_TOL)


@pytest.mark.performance
def test_no_score_matrix_in_memory(perf):
    """Modelled DRAM bytes of a float16 call, 2 heads of 256 positions: at most 3x the reference's."""

    def make(rng):
        return Call("flash_attention", *qkv(rng, 1, 2, 256, 256, 16, torch.float16))

    perf.measure(
        "dram",
        make,
        check=check_measured,
        hint="the score matrix S or the weights P written to global memory? Keep each tile in the kernel: "
        "only q, k, v are read and only out and lse are written",
    )


@pytest.mark.performance
def test_causal_skips_masked_blocks(perf):
    """Causal, 16 queries over 1024 keys: the blocks above the diagonal are skipped (bytes at most 5x)."""

    def make(rng):
        return Call("flash_attention", *qkv(rng, 1, 1, 16, 1024, 16, torch.float16), causal=True)

    perf.measure(
        "causal_traffic",
        make,
        check=check_measured,
        hint="the key blocks above the causal diagonal loaded (and masked)? Stop the loop at "
        "min((start_m + 1) * BLOCK_M, seq_k): query i never sees a key j > i",
    )


@pytest.mark.performance
def test_speed_on_gpu(perf):
    """Causal float16 attention, 2 x 8 heads of 4096 positions: GPU time at most 2x the reference's."""

    def make(rng):
        return Call("flash_attention", *qkv(rng, 2, 8, 4096, 4096, 64, torch.float16), causal=True)

    perf.measure(
        "speed",
        make,
        check=check_measured,
        hint="the blocks above the diagonal skipped, tiles kept on chip, float16 operands for tl.dot?",
    )
