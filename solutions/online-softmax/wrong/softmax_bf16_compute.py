# expect: failed
# why: online_softmax upcasts float16 but computes bfloat16 in bfloat16 (its range is float32's, so
#   nothing overflows): its 8-bit mantissa rounds every exponential, block sum and quotient, a few
#   units in the last place off a float32 computation rounded once
# caught-by: test_online_softmax_dtypes
import math

import torch

HALF = (torch.float16, torch.bfloat16)
NEG_INF = float("-inf")


def _safe(m: torch.Tensor) -> torch.Tensor:
    """The running max with -inf replaced by 0: subtracting it from -inf gives -inf (weight 0),
    where subtracting -inf itself would give -inf - (-inf) = NaN."""
    return torch.where(m == NEG_INF, torch.zeros_like(m), m)


def online_softmax(x: torch.Tensor, block: int) -> torch.Tensor:
    """softmax(x, dim=-1), its max and sum gathered in one streaming pass over column blocks."""
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}")
    out_dtype = x.dtype
    if out_dtype == torch.float16:  # bfloat16 has float32's range: no overflow, so no upcast...
        x = x.float()
    n = x.shape[-1]
    m = x.new_full(x.shape[:-1], NEG_INF)  # (...,) running max
    denom = x.new_zeros(x.shape[:-1])  # (...,) running sum of exp(x - m)
    for start in range(0, n, block):
        xb = x[..., start : start + block]  # (..., b)
        m_new = torch.maximum(m, xb.amax(dim=-1))  # (...,)
        m_safe = _safe(m_new)
        # the old sum was taken relative to the old max: rescale it to the new one
        denom = denom * torch.exp(m - m_safe) + torch.exp(xb - m_safe.unsqueeze(-1)).sum(dim=-1)
        m = m_new
    # the normalising pass; a row of -inf only has denom = 0 and gets zeros
    p = torch.exp(x - _safe(m).unsqueeze(-1)) / torch.where(denom > 0, denom, 1.0).unsqueeze(-1)
    return p.to(out_dtype)


def flash_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    block_q: int,
    block_k: int,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d)) v and its log-sum-exp, one (block_q x block_k) tile at a time."""
    if block_q < 1 or block_k < 1:
        raise ValueError(f"block sizes must be at least 1, got block_q={block_q}, block_k={block_k}")
    out_dtype = q.dtype
    if out_dtype in HALF:
        q, k, v = q.float(), k.float(), v.float()
    n_q, d = q.shape[-2], q.shape[-1]
    n_k, d_v = k.shape[-2], v.shape[-1]
    lead = q.shape[:-2]
    scale = 1.0 / math.sqrt(d)
    out = q.new_empty(*lead, n_q, d_v)  # (..., n_q, d_v)
    lse = q.new_empty(*lead, n_q, dtype=torch.float32)  # (..., n_q)
    for qs in range(0, n_q, block_q):
        qb = q[..., qs : qs + block_q, :] * scale  # (..., bq, d)
        bq = qb.shape[-2]
        m = qb.new_full((*lead, bq), NEG_INF)  # (..., bq) running max of the scores
        denom = qb.new_zeros((*lead, bq))  # (..., bq) running sum of exp(score - m)
        acc = qb.new_zeros((*lead, bq, d_v))  # (..., bq, d_v) running sum of exp(score - m) v
        # causal: the last query of this block sees keys up to qs + bq - 1, later ones are skipped
        k_end = min(n_k, qs + bq) if is_causal else n_k
        for ks in range(0, k_end, block_k):
            kb = k[..., ks : ks + block_k, :]  # (..., bk, d)
            vb = v[..., ks : ks + block_k, :]  # (..., bk, d_v)
            s = qb @ kb.transpose(-2, -1)  # (..., bq, bk)
            bk = s.shape[-1]
            if is_causal and ks + bk - 1 > qs:  # the tile crosses the diagonal: mask key j > query i
                i = torch.arange(qs, qs + bq, device=q.device).unsqueeze(1)  # (bq, 1)
                j = torch.arange(ks, ks + bk, device=q.device).unsqueeze(0)  # (1, bk)
                s = s.masked_fill(j > i, NEG_INF)
            m_new = torch.maximum(m, s.amax(dim=-1))  # (..., bq)
            m_safe = _safe(m_new)
            alpha = torch.exp(m - m_safe)  # (..., bq) moves the old sums to the new max
            p = torch.exp(s - m_safe.unsqueeze(-1))  # (..., bq, bk)
            denom = alpha * denom + p.sum(dim=-1)
            acc = alpha.unsqueeze(-1) * acc + p @ vb  # (..., bq, d_v)
            m = m_new
        # normalise once at the end; a query that saw no key keeps acc = 0 and denom = 0: output 0
        out[..., qs : qs + bq, :] = acc / torch.where(denom > 0, denom, 1.0).unsqueeze(-1)
        lse[..., qs : qs + bq] = m + torch.log(denom)  # -inf + log(0) = -inf for such a query
    return out.to(out_dtype), lse


def merge_partials(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over the union of two disjoint key sets, from the result over each."""
    out_dtype = out_a.dtype
    lse = torch.logaddexp(lse_a, lse_b)  # (..., n_q) log(e^lse_a + e^lse_b), stable
    lse_safe = _safe(lse)  # both empty: lse = -inf, and both weights must be 0
    w_a = torch.exp(lse_a - lse_safe).unsqueeze(-1)  # (..., n_q, 1) share of the mass in a
    w_b = torch.exp(lse_b - lse_safe).unsqueeze(-1)
    out = w_a * out_a.float() + w_b * out_b.float()  # (..., n_q, d_v)
    return out.to(out_dtype), lse
