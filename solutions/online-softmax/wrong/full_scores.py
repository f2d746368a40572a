# expect: too_slow
# why: correct, but builds the whole (n_q, n_k) score matrix and softmaxes it: quadratic memory,
#   the very thing the blocked recurrence exists to avoid
# caught-by: test_memory
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
    n_q, n_k = q.shape[-2], k.shape[-2]
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., n_q, n_k): all of it at once
    if is_causal:
        s = s.masked_fill(torch.ones(n_q, n_k, dtype=torch.bool).triu(1), NEG_INF)
    m = s.amax(dim=-1, keepdim=True) if n_k else s.new_full((*s.shape[:-1], 1), NEG_INF)
    p = torch.exp(s - _safe(m))
    denom = p.sum(dim=-1)
    out = (p @ v) / torch.where(denom > 0, denom, 1.0).unsqueeze(-1)
    lse = m.squeeze(-1) + torch.log(denom)
    return out.to(out_dtype), lse.float()


def merge_partials(out_a, lse_a, out_b, lse_b):
    lse = torch.logaddexp(lse_a, lse_b)
    w_a = torch.exp(lse_a - _safe(lse)).unsqueeze(-1)
    w_b = torch.exp(lse_b - _safe(lse)).unsqueeze(-1)
    return (w_a * out_a.float() + w_b * out_b.float()).to(out_a.dtype), lse
