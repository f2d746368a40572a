# expect: too_slow
# why: correct, but walks the queries one position at a time (the blocks ignored): a Python loop
#   over every query, each with its own row of scores
# caught-by: test_speed
import math

import torch

HALF = (torch.float16, torch.bfloat16)
NEG_INF = float("-inf")


def _safe(m):
    return torch.where(m == NEG_INF, torch.zeros_like(m), m)


def online_softmax(x, block):
    if block < 1:
        raise ValueError("block must be at least 1")
    out_dtype = x.dtype
    if out_dtype in HALF:
        x = x.float()
    m = x.new_full(x.shape[:-1], NEG_INF)
    denom = x.new_zeros(x.shape[:-1])
    for start in range(0, x.shape[-1], block):
        xb = x[..., start : start + block]
        m_new = torch.maximum(m, xb.amax(dim=-1))
        denom = denom * torch.exp(m - _safe(m_new)) + torch.exp(xb - _safe(m_new).unsqueeze(-1)).sum(dim=-1)
        m = m_new
    p = torch.exp(x - _safe(m).unsqueeze(-1)) / torch.where(denom > 0, denom, 1.0).unsqueeze(-1)
    return p.to(out_dtype)


def flash_attention_forward(q, k, v, *, block_q, block_k, is_causal=False):
    if block_q < 1 or block_k < 1:
        raise ValueError("block sizes must be at least 1")
    out_dtype = q.dtype
    if out_dtype in HALF:
        q, k, v = q.float(), k.float(), v.float()
    n_q, n_k, d_v = q.shape[-2], k.shape[-2], v.shape[-1]
    lead = q.shape[:-2]
    out = q.new_zeros((*lead, n_q, d_v))
    lse = q.new_full((*lead, n_q), NEG_INF)
    for i in range(n_q):  # one query at a time: only one row of scores ever exists
        k_end = min(n_k, i + 1) if is_causal else n_k
        if k_end == 0:
            continue
        s = (k[..., :k_end, :] @ q[..., i, :].unsqueeze(-1)).squeeze(-1) / math.sqrt(
            q.shape[-1]
        )  # (..., k_end)
        m = s.amax(dim=-1, keepdim=True)
        p = torch.exp(s - m)
        denom = p.sum(dim=-1, keepdim=True)
        out[..., i, :] = (p.unsqueeze(-2) @ v[..., :k_end, :]).squeeze(-2) / denom
        lse[..., i] = (m + torch.log(denom)).squeeze(-1)
    return out.to(out_dtype), lse.float()


def merge_partials(out_a, lse_a, out_b, lse_b):
    lse = torch.logaddexp(lse_a, lse_b)
    w_a = torch.exp(lse_a - _safe(lse)).unsqueeze(-1)
    w_b = torch.exp(lse_b - _safe(lse)).unsqueeze(-1)
    return (w_a * out_a.float() + w_b * out_b.float()).to(out_a.dtype), lse
