# expect: failed
# why: the user mask is read as True = blocked (nn.MultiheadAttention's convention), not True = may attend
# caught-by: test_user_mask, test_mask_and_causal
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
    blocked = ~causal_mask(q.shape[-2], k.shape[-2], align=align) if is_causal else None
    if mask is not None:
        blocked = mask if blocked is None else blocked | mask
    if blocked is not None:
        att = torch.softmax(att.masked_fill(blocked, float("-inf")), dim=-1).masked_fill(blocked, 0.0)
    else:
        att = torch.softmax(att, dim=-1)
    return (att @ v).to(out_dtype)
