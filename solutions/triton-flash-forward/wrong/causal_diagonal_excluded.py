# expect: failed
# why: the causal mask keeps keys j < i instead of j <= i: a query may not see its own key, and
#   query 0, which then sees nothing, gets 0 / 0 = NaN
# caught-by: test_worked_example, test_ragged_by_hand, test_ragged_against_torch
import math

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * LOG2E)
LN2 = 0.6931471805599453  # ln(2): log(x) = log2(x) * LN2


@triton.jit
def flash_forward_kernel(
    Q, K, V, Out, Lse,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    n_heads, seq_q, seq_k, qk_scale,
    CAUSAL: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    start_m = tl.program_id(0)  # which block of BLOCK_M query rows
    bh = tl.program_id(1)  # which (batch, head)
    b = bh // n_heads
    h = bh % n_heads

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)  # the query rows of this program
    offs_n = tl.arange(0, BLOCK_N)  # key rows within a key block
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < seq_q  # the last query block may hang over the end

    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=row_ok[:, None], other=0.0)  # (BLOCK_M, HEAD_DIM), stays on chip

    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running max, in base-2 units
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running sum of exp2(s - m_i)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)  # running sum of exp2(s - m_i) v

    if CAUSAL:
        # query i sees keys j <= i: no key at or after the block's last row + 1 is ever seen, so
        # the key blocks entirely above the diagonal are skipped, not loaded and masked
        hi = tl.minimum((start_m + 1) * BLOCK_M, seq_k)
    else:
        hi = seq_k

    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < seq_k  # the last key block may hang over the end
        # K^T tile (HEAD_DIM, BLOCK_N): the key rows along the columns, ready for q @ k^T
        kt = tl.load(
            k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd, mask=col_ok[None, :], other=0.0
        )
        s = tl.dot(q, kt) * qk_scale  # (BLOCK_M, BLOCK_N), float32, scaled by sm_scale * log2(e)
        valid = col_ok[None, :]  # padding keys get -inf, not the score 0 of their zero rows
        if CAUSAL:
            valid = valid & (cols[None, :] < offs_m[:, None])  # the mistake: < instead of <=
        s = tl.where(valid, s, float("-inf"))

        # key 0 is in the first block and every query sees it, so m_new is finite from the start
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)  # rescales what was gathered against the old max
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(
            v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd, mask=col_ok[:, None], other=0.0
        )
        # p in v's dtype: float16 operands for the tensor cores, float32 accumulation
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    out = acc / l_i[:, None]  # normalise once, after the last block
    o_ptrs = Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=row_ok[:, None])
    # lse = ln(sum_j exp(s_ij)) = (m + log2(l)) * ln(2), with m and s in base-2 units
    lse = (m_i + tl.log2(l_i)) * 0.6931471805599453
    tl.store(Lse + bh * seq_q + offs_m, lse, mask=row_ok)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must have 4 dims (batch, heads, seq, head_dim)")
        if t.dtype not in (torch.float16, torch.float32) or t.dtype != q.dtype:
            raise ValueError("q, k and v must all be float16 or all float32")
    b, h, n_q, d = q.shape
    if k.shape != v.shape or k.shape[:2] != (b, h) or k.shape[3] != d:
        raise ValueError("k and v must be (batch, heads, seq_k, head_dim) with q's batch, heads, head_dim")
    if d not in (16, 32, 64, 128):
        raise ValueError("head_dim must be 16, 32, 64 or 128")
    if n_q < 1 or k.shape[2] < 1:
        raise ValueError("seq_q and seq_k must be at least 1")


def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, sm_scale: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(sm_scale * q @ k^T) @ v, and the natural log-sum-exp of each row of scores."""
    _check(q, k, v)
    batch, heads, seq_q, head_dim = q.shape
    seq_k = k.shape[2]
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(head_dim)

    out = torch.empty_like(q)  # q's dtype, shape and device
    lse = torch.empty((batch, heads, seq_q), dtype=torch.float32, device=q.device)

    # on a GPU, large tiles (fewer reloads of K and V) that still fit the registers without
    # spilling (float32 tiles take twice the room); in the interpreter, small ones keep it quick
    if q.is_cuda:
        block_m, block_n = (128, 64) if q.dtype == torch.float16 else (64, 32)
    else:
        block_m, block_n = 32, 32
    grid = (triton.cdiv(seq_q, block_m), batch * heads)  # query blocks fastest: they share K and V
    flash_forward_kernel[grid](
        q, k, v, out, lse,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        heads, seq_q, seq_k, sm_scale * LOG2E,
        CAUSAL=bool(causal), HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n,
        num_warps=4, num_stages=2,
    )  # fmt: skip
    return out, lse
