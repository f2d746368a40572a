"""Grouped-query attention (GQA) and multi-query attention (MQA), without repeating K and V."""

import math

import torch

HALF = (torch.float16, torch.bfloat16)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, n_kv, T, d) -> (B, n_kv * n_rep, T, d): kv head j becomes heads j*n_rep .. j*n_rep + n_rep - 1."""
    if n_rep == 1:
        return x
    b, n_kv, t, d = x.shape
    # a new axis right after the kv heads, expanded (a view), then merged with them: a copy
    return x[:, :, None, :, :].expand(b, n_kv, n_rep, t, d).reshape(b, n_kv * n_rep, t, d)


def grouped_query_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v where query head h reads kv head h // (n_heads // n_kv_heads)."""
    b, n_heads, t_q, d = q.shape
    n_kv, t_k = k.shape[1], k.shape[2]
    if n_kv < 1 or n_heads % n_kv != 0:
        raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv})")
    g = n_heads // n_kv  # query heads per kv head
    d_v = v.shape[-1]
    out_dtype = q.dtype
    if out_dtype in HALF:
        # float16 overflows past 65504 and bfloat16 keeps 8 bits: scores and softmax in float32
        q, k, v = q.float(), k.float(), v.float()

    # The g query heads of group j are heads j*g .. j*g + g - 1: adjacent in q. Folding them into
    # the query axis gives one (g * t_q, d) block of rows per kv head, and a plain batched matmul
    # against that kv head's keys: nothing of k or v is copied.
    rows = q.reshape(b, n_kv, g * t_q, d)  # a view when q is contiguous
    scores = (rows @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))  # (b, n_kv, g * t_q, t_k)
    if causal:
        # bottom-right: query i is position i + (t_k - t_q) of the keys
        i = torch.arange(t_q, device=q.device).unsqueeze(1)
        j = torch.arange(t_k, device=q.device).unsqueeze(0)
        blocked = j > i + (t_k - t_q)  # (t_q, t_k), the same for every head
        scores = scores.view(b, n_kv, g, t_q, t_k).masked_fill(blocked, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        # a query before every key (t_q > t_k) has a row of -inf, NaN after the softmax: zero it
        weights = weights.masked_fill(blocked, 0.0).view(b, n_kv, g * t_q, t_k)
    else:
        weights = torch.softmax(scores, dim=-1)
    out = weights @ v  # (b, n_kv, g * t_q, d_v)
    return out.reshape(b, n_heads, t_q, d_v).to(out_dtype)
