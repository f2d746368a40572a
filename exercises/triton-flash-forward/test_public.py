"""Public tests: a compile check, the worked example, uniform attention you can check by hand, and
small ragged shapes against torch.

Run them with `grader test triton-flash-forward flash_triton.py`.
"""

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # the oracle, on the tests' side only

from grader.testing import assert_close, compare, expect

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
BLOCKS = (16, 32, 64, 128)  # the key block sizes whose mistakes are recognised

# out against the exact (float64) result: TF32 dots on a GPU, float16 operands and one rounding of
# the output all fit, with room; a correct kernel is within about 1e-3
OUT_TOL = {"atol": 5e-3, "rtol": 5e-3}
LSE_TOL = {"atol": 5e-3, "rtol": 1e-3}


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


def check_result(result, q, k, v, causal=False, sm_scale=None, expected=None):
    """(out, lse) against the oracle (or `expected`), each with its tolerance; a matching mistake is named."""
    expect(isinstance(result, tuple) and len(result) == 2, "flash_attention must return a tuple (out, lse)")
    out, lse = result
    expected_out, expected_lse = expected or oracle(q, k, v, causal, sm_scale)
    wrong = functools.cache(lambda: mistakes(q, k, v, causal, sm_scale))  # only once something is off
    out_hint = name_mistake(out, wrong()[0], OUT_TOL) if compare(out, expected_out, **OUT_TOL) else ""
    assert_close(out, expected_out, what="out", hint=out_hint, **OUT_TOL)
    lse_hint = name_mistake(lse, wrong()[1], LSE_TOL) if compare(lse, expected_lse, **LSE_TOL) else ""
    assert_close(lse, expected_lse, what="lse", hint=lse_hint, **LSE_TOL)


def by_hand():
    """The lesson's worked example as 16-wide vectors: with sm_scale = 1, s_ij = q_i[j]."""
    s = torch.tensor(
        [
            [1.0, 9.0, 9.0, 9.0],  # the 9s are above the diagonal: never seen when causal
            [0.0, 2.0, 9.0, 9.0],
            [3.0, 1.0, 2.0, 9.0],
            [1.0, 0.0, 4.0, 0.0],
        ]
    )
    q = torch.zeros(1, 1, 4, 16)
    q[0, 0, :, :4] = s
    k = torch.zeros(1, 1, 4, 16)
    k[0, 0, :, :4] = torch.eye(4)  # key j is the j-th unit vector
    v = torch.tensor([10.0, 20.0, 30.0, 40.0]).view(1, 1, 4, 1).expand(1, 1, 4, 16).contiguous()
    return q, k, v


SPILL_LIMIT = 256  # bytes of registers spilled to local memory, at most


def test_compiles_for_h100(submission, perf):
    """A float16 call (head_dim 64, causal): its kernels compile for an H100 and use the tensor cores.

    The first test of the file: it compiles only the kernels launched so far.
    """
    if perf.on_gpu():
        pytest.skip("on a GPU host the kernels are compiled by every call already")
    rng = np.random.default_rng(1)
    q, k, v = (torch.from_numpy(rng.standard_normal((1, 1, 40, 64)).astype(np.float16)) for _ in range(3))
    submission.flash_attention(q, k, v, causal=True)
    built = perf.compile_kernels()
    expect(len(built) > 0, "the call launched no Triton kernel: the work must be done by one")
    for kernel in built:
        expect(
            not kernel["error"],
            f"kernel {kernel['kernel']} does not compile for an H100 (sm_90)",
            detail=kernel["error"],
            hint="the interpreter accepts more than the compiler: use only the classic Triton API of the "
            "lesson, power-of-two blocks, and constexpr block sizes",
        )
        expect(
            kernel["spill_bytes"] <= SPILL_LIMIT,
            f"kernel {kernel['kernel']} spills {kernel['spill_bytes']} bytes of registers to local memory "
            f"(at most {SPILL_LIMIT})",
            hint="smaller tiles (BLOCK_M x BLOCK_N) or more warps (num_warps=8) per program",
        )
    expect(
        any(kernel["tensor_cores"] for kernel in built),
        "no kernel uses the tensor cores (no mma instruction): compute q @ k^T and p @ v with tl.dot on "
        "float16 operands",
        detail="; ".join(f"{b['kernel']}: {b['registers']} registers" for b in built),
    )


def test_worked_example(submission):
    """The lesson's worked example (causal, sm_scale = 1): out rows 10, 18.808, 15.795, 29.083."""
    q, k, v = by_hand()
    out_rows = torch.tensor([10.0, 18.807971, 15.794875, 29.083464])
    expected_out = out_rows.view(1, 1, 4, 1).expand(1, 1, 4, 16)
    expected_lse = torch.tensor([[[1.0, 2.126928, 3.407606, 4.082886]]])
    result = submission.flash_attention(q, k, v, causal=True, sm_scale=1.0)
    check_result(result, q, k, v, True, 1.0, expected=(expected_out, expected_lse))


@pytest.mark.parametrize("causal", [pytest.param(False, id="full"), pytest.param(True, id="causal")])
def test_ragged_by_hand(submission, causal):
    """q = 0 and 37 keys (ragged): every allowed key scores 0, so out is a mean of v and lse = log(count)."""
    n = 37
    q = torch.zeros(1, 2, n, 16)
    k = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 2, n, 16)).astype(np.float32))
    v = torch.arange(n, dtype=torch.float32).view(1, 1, n, 1).expand(1, 2, n, 16).contiguous()
    count = torch.arange(1, n + 1, dtype=torch.float32) if causal else torch.full((n,), float(n))
    if causal:
        out_rows = v[0, 0, :, 0].cumsum(0) / count  # the running mean: query i averages v_0 .. v_i
    else:
        out_rows = v[0, 0, :, 0].mean().expand(n)  # every query: the mean of v_0 .. v_36, 18
    expected = (out_rows.view(1, 1, n, 1).expand(1, 2, n, 16), torch.log(count).expand(1, 2, n))
    check_result(submission.flash_attention(q, k, v, causal=causal), q, k, v, causal, expected=expected)


CASES = [
    pytest.param(1, 2, 37, 16, torch.float32, False, id="37-positions-float32"),
    pytest.param(1, 2, 37, 16, torch.float32, True, id="37-positions-float32-causal"),
    pytest.param(2, 2, 80, 32, torch.float16, False, id="80-positions-float16"),
    pytest.param(2, 2, 80, 32, torch.float16, True, id="80-positions-float16-causal"),
    pytest.param(1, 1, 1, 16, torch.float32, True, id="one-position"),
]


@pytest.mark.parametrize("batch, heads, seq, head_dim, dtype, causal", CASES)
def test_ragged_against_torch(submission, batch, heads, seq, head_dim, dtype, causal):
    """Random inputs on ragged lengths against torch's attention in float64 and the exact log-sum-exp."""
    rng = np.random.default_rng(seq * 10 + head_dim + causal)
    q, k, v = (
        torch.from_numpy(rng.standard_normal((batch, heads, seq, head_dim)).astype(np.float32)).to(dtype)
        for _ in range(3)
    )
    result = submission.flash_attention(q, k, v, causal=causal)
    expect(
        isinstance(result, tuple) and len(result) == 2,
        "flash_attention must return a tuple (out, lse)",
    )
    got_out, got_lse = result
    expect(
        isinstance(got_out, torch.Tensor) and got_out.dtype == dtype,
        f"out must have the input's dtype {dtype}",
        detail=f"got {getattr(got_out, 'dtype', type(got_out))}",
    )
    expect(
        isinstance(got_lse, torch.Tensor) and got_lse.dtype == torch.float32,
        "lse must be float32",
        detail=f"got {getattr(got_lse, 'dtype', type(got_lse))}",
    )
    check_result(result, q, k, v, causal)
