# expect: failed
# why: align="bottom_right" builds the top-left mask (the diagonal is never shifted by n_k - n_q)
# caught-by: test_causal_mask, test_causal_attention, test_bottom_right_matches_torch, test_kv_cache_decoding
import math

import torch


def causal_mask(n_q, n_k, *, align="top_left", device=None):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(q, k, v, *, mask=None, is_causal=False, align="top_left"):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    out_dtype = q.dtype
    q, k, v = q.float(), k.float(), v.float()
    n_q, n_k = q.shape[-2], k.shape[-2]
    att = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    allowed = causal_mask(n_q, n_k, align=align) if is_causal else None
    if mask is not None:
        allowed = mask if allowed is None else allowed & mask
    if allowed is not None:
        att = att.masked_fill(~allowed, float("-inf"))
    att = torch.nan_to_num(torch.softmax(att, dim=-1), nan=0.0)
    return (att @ v).to(out_dtype)
