"""A student's causal-masking submission: a correct solution written differently from the
reference (an additive bias instead of masked_fill, NaN rows cleaned with torch.where).
`scripts/run.sh` grades it to show what a verdict looks like."""

import math

import torch


def causal_mask(n_q, n_k, *, align="top_left", device=None):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown alignment {align!r}")
    shift = n_k - n_q if align == "bottom_right" else 0
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=shift)


def scaled_dot_product_attention(q, k, v, *, mask=None, is_causal=False, align="top_left"):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown alignment {align!r}")
    dtype = q.dtype
    q, k, v = q.float(), k.float(), v.float()
    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device)
    if is_causal:
        allowed = allowed & causal_mask(q.shape[-2], k.shape[-2], align=align, device=q.device)
    if mask is not None:
        allowed = allowed & mask
    scores = scores + torch.zeros_like(scores).masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.where(torch.isnan(weights), torch.zeros_like(weights), weights)
    return (weights @ v).to(dtype)
