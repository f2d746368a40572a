# expect: too_slow
# why: correct, but unfused: a first kernel writes the whole (seq_q, seq_k) score matrix to global
#   memory in float32, a second reads it back twice (the max and the sum, then the weights for
#   P @ V): the quadratic traffic FlashAttention exists to avoid
# caught-by: test_no_score_matrix_in_memory
import math

import torch
import triton
import triton.language as tl


@triton.jit
def scores_kernel(
    Q, K, S,
    stride_qh, stride_qm, stride_kh, stride_kn,
    seq_q, seq_k, sm_scale,
    CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    bh = tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(
        Q + bh * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
        mask=offs_m[:, None] < seq_q,
        other=0.0,
    )
    kt = tl.load(
        K + bh * stride_kh + offs_n[None, :] * stride_kn + offs_d[:, None],
        mask=offs_n[None, :] < seq_k,
        other=0.0,
    )
    s = tl.dot(q, kt) * sm_scale
    if CAUSAL:
        s = tl.where(offs_n[None, :] <= offs_m[:, None], s, float("-inf"))
    inside = (offs_m[:, None] < seq_q) & (offs_n[None, :] < seq_k)
    tl.store(S + bh * seq_q * seq_k + offs_m[:, None] * seq_k + offs_n[None, :], s, mask=inside)


@triton.jit
def softmax_pv_kernel(
    S, V, Out, Lse,
    stride_vh, stride_vn, stride_oh, stride_om,
    seq_q, seq_k,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < seq_q
    s_rows = S + bh * seq_q * seq_k + offs_m[:, None] * seq_k
    # pass 1 over the stored scores: row max and row sum
    m = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    for start_n in range(0, seq_k, BLOCK_N):
        cols = start_n + offs_n
        s = tl.load(
            s_rows + cols[None, :], mask=row_ok[:, None] & (cols[None, :] < seq_k), other=float("-inf")
        )
        m_new = tl.maximum(m, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        l_sum = l_sum * tl.exp(m - m_safe) + tl.sum(tl.exp(s - m_safe[:, None]), 1)
        m = m_new
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    # pass 2: read the scores again, normalised weights times V
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, seq_k, BLOCK_N):
        cols = start_n + offs_n
        s = tl.load(
            s_rows + cols[None, :], mask=row_ok[:, None] & (cols[None, :] < seq_k), other=float("-inf")
        )
        p = tl.exp(s - m_safe[:, None]) / l_sum[:, None]
        v = tl.load(
            V + bh * stride_vh + cols[:, None] * stride_vn + offs_d[None, :],
            mask=cols[:, None] < seq_k,
            other=0.0,
        )
        acc += tl.dot(p.to(v.dtype), v)
    tl.store(
        Out + bh * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :],
        acc.to(Out.dtype.element_ty),
        mask=row_ok[:, None],
    )
    tl.store(Lse + bh * seq_q + offs_m, m + tl.log(l_sum), mask=row_ok)


def flash_attention(q, k, v, causal=False, sm_scale=None):
    for t in (q, k, v):
        if t.dim() != 4 or t.dtype not in (torch.float16, torch.float32) or t.dtype != q.dtype:
            raise ValueError("q, k and v must be 4-d, all float16 or all float32")
    batch, heads, seq_q, head_dim = q.shape
    seq_k = k.shape[2]
    if k.shape != v.shape or k.shape[:2] != (batch, heads) or k.shape[3] != head_dim:
        raise ValueError("k and v must match q's batch, heads and head_dim")
    if head_dim not in (16, 32, 64, 128):
        raise ValueError("head_dim must be 16, 32, 64 or 128")
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(head_dim)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    bh = batch * heads
    scores = torch.empty((bh, seq_q, seq_k), dtype=torch.float32, device=q.device)  # the whole matrix
    out = torch.empty_like(q)
    lse = torch.empty((batch, heads, seq_q), dtype=torch.float32, device=q.device)
    bm, bn = 32, 32
    scores_kernel[(triton.cdiv(seq_q, bm), triton.cdiv(seq_k, bn), bh)](
        q, k, scores, seq_q * head_dim, head_dim, seq_k * head_dim, head_dim, seq_q, seq_k, sm_scale,
        CAUSAL=bool(causal), HEAD_DIM=head_dim, BLOCK_M=bm, BLOCK_N=bn,
    )  # fmt: skip
    softmax_pv_kernel[(triton.cdiv(seq_q, bm), bh)](
        scores, v, out, lse, seq_k * head_dim, head_dim, seq_q * head_dim, head_dim, seq_q, seq_k,
        HEAD_DIM=head_dim, BLOCK_M=bm, BLOCK_N=bn,
    )  # fmt: skip
    return out, lse
