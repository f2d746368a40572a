# expect: too_slow
# why: correct, but loops over the query positions in Python (one small matmul per row)
# caught-by: test_speed
import math

import torch


def causal_mask(n_q, n_k, *, align="top_left", device=None):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    offset = 0 if align == "top_left" else n_k - n_q
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=offset)


def scaled_dot_product_attention(q, k, v, *, mask=None, is_causal=False, align="top_left"):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    out_dtype = q.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    n_q, d = q.shape[-2], q.shape[-1]
    n_k = k.shape[-2]
    allowed = causal_mask(n_q, n_k, align=align) if is_causal else None
    if mask is not None:
        allowed = mask if allowed is None else allowed & mask
    if allowed is not None:
        allowed = allowed.expand(*allowed.shape[:-2], n_q, n_k)  # one row per query
    rows = []
    for i in range(n_q):
        scores = q[..., i : i + 1, :] @ k.transpose(-2, -1) / math.sqrt(d)  # (..., 1, n_k)
        if allowed is None:
            weights = torch.softmax(scores, dim=-1)
        else:
            row = allowed[..., i : i + 1, :]
            weights = torch.softmax(scores.masked_fill(~row, float("-inf")), dim=-1).masked_fill(~row, 0.0)
        rows.append(weights @ v)  # (..., 1, d_v)
    return torch.cat(rows, dim=-2).to(out_dtype)
