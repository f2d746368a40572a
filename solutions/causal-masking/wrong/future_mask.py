# expect: failed
# why: triu instead of tril: the mask allows the keys at and after each query's position, the future
# caught-by: test_no_future_leakage, test_causal_mask, test_causal_attention
import math

import torch


def causal_mask(n_q, n_k, *, align="top_left", device=None):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    offset = 0 if align == "top_left" else n_k - n_q
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).triu(diagonal=offset)


def scaled_dot_product_attention(q, k, v, *, mask=None, is_causal=False, align="top_left"):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    out_dtype = q.dtype
    q, k, v = q.float(), k.float(), v.float()
    att = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    allowed = causal_mask(q.shape[-2], k.shape[-2], align=align) if is_causal else None
    if mask is not None:
        allowed = mask if allowed is None else allowed & mask
    if allowed is not None:
        blocked = ~allowed
        att = torch.softmax(att.masked_fill(blocked, float("-inf")), dim=-1).masked_fill(blocked, 0.0)
    else:
        att = torch.softmax(att, dim=-1)
    return (att @ v).to(out_dtype)
