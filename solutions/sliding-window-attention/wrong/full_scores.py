# expect: too_slow
# why: correct, but builds the full (n_q, n_k) score matrix and masks everything outside the band:
#   memory and compute grow as T^2, which is what the window was meant to avoid
# caught-by: test_memory_grows_linearly
import math

import torch


def _check(n_q, n_k, window, align):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    if window < 1 or not 1 <= n_q <= n_k:
        raise ValueError("bad sizes")


def window_mask(n_q, n_k, window, *, align="top_left", device=None):
    _check(n_q, n_k, window, align)
    p = torch.arange(n_q, device=device).unsqueeze(1) + (0 if align == "top_left" else n_k - n_q)
    j = torch.arange(n_k, device=device).unsqueeze(0)
    return (j <= p) & (j > p - window)


def sliding_window_attention(q, k, v, window, *, align="top_left"):
    n_q, n_k = q.shape[-2], k.shape[-2]
    _check(n_q, n_k, window, align)
    out_dtype = q.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., n_q, n_k)
    scores = scores.masked_fill(~window_mask(n_q, n_k, window, align=align), float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v).to(out_dtype)
