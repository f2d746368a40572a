# expect: failed
# why: a row with no allowed key is all -inf, and the plain softmax turns it into NaN
# caught-by: test_fully_masked_rows
import math

import torch


def causal_mask(n_q, n_k, *, align="top_left", device=None):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    offset = 0 if align == "top_left" else n_k - n_q
    i = torch.arange(n_q, device=device).unsqueeze(1)
    j = torch.arange(n_k, device=device).unsqueeze(0)
    return j <= i + offset


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
        att = att.masked_fill(~allowed, float("-inf"))
    return (torch.softmax(att, dim=-1) @ v).to(out_dtype)
