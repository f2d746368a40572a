"""The FlashAttention forward pass in Triton.

Write the kernel and its wrapper below. Read README.md first: it explains every convention used here.
The tests call only `flash_attention`; the kernel's name and arguments are yours to change.
"""

import math  # noqa: F401  (1 / math.sqrt(head_dim) is the default scale)

import torch
import triton
import triton.language as tl


@triton.jit
def flash_forward_kernel(
    Q, K, V, Out, Lse,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    n_heads, seq_q, seq_k, sm_scale,
    CAUSAL: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    """One program: BLOCK_M query rows of one (batch, head), over all the keys it may see.

    Grid: (cdiv(seq_q, BLOCK_M), batch * heads). Program (i, bh) handles query rows
    i * BLOCK_M .. i * BLOCK_M + BLOCK_M - 1 of batch bh // n_heads, head bh % n_heads.

    Q (batch, heads, seq_q, HEAD_DIM), K and V (batch, heads, seq_k, HEAD_DIM), Out like Q: pointers to
    the first element, with the four strides of each tensor (in elements). Lse: a contiguous float32
    (batch, heads, seq_q) tensor, whose row bh starts at bh * seq_q.

    The loop: for each block of BLOCK_N keys (only those at or before the diagonal when CAUSAL),
    S = sm_scale * q @ k^T, masked to -inf where a key is past seq_k or (CAUSAL) j > i; then the online
    softmax update of the running max m, the running sum l and the unnormalised accumulator acc
    (rescaled by exp(m_old - m_new)). After the loop: Out = acc / l in Out's dtype, and
    Lse = m + log(l), the natural log-sum-exp of each query row. Rows past seq_q are never stored.
    """
    pass


def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, sm_scale: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(sm_scale * q @ k^T) @ v, computed by one Triton kernel launch, and the log-sum-exp.

    q: (batch, heads, seq_q, head_dim); k and v: (batch, heads, seq_k, head_dim). All three float16 or
    all three float32, on the same device. head_dim is 16, 32, 64 or 128; seq_q, seq_k >= 1, any size
    (not a multiple of the blocks in general).

    causal=True: query i attends key j only when j <= i (aligned at the start, as torch's
    F.scaled_dot_product_attention(..., is_causal=True), also when seq_q != seq_k). The key blocks
    entirely above the diagonal are skipped, not loaded and masked.

    sm_scale: the factor on the scores, 1 / sqrt(head_dim) when None.

    Returns (out, lse):
        out: (batch, heads, seq_q, head_dim), q's dtype: the attention output.
        lse: (batch, heads, seq_q), float32: log(sum_j exp(s_ij)) in natural log over the scaled and
             masked scores s_ij of query row i.

    Raises ValueError for a head_dim other than 16, 32, 64, 128, for inputs that are not 4-dimensional
    float16 / float32 tensors of one dtype, and for k, v whose shapes do not match q's.
    q, k and v are left as they were. No torch matmul, softmax or exp: the kernel does the work.
    """
    raise NotImplementedError("flash_attention: allocate out and lse, launch the kernel, return both")
