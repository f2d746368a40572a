# expect: failed
# why: the window is the w keys before the query, its own key left out (i - w <= j < i): every
#   output shifts by one position, and query 0 has no key at all (a softmax over nothing: NaN)
# caught-by: test_window_mask, test_windows, test_window_one_is_v
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
    return (j < p) & (j >= p - window)


def sliding_window_attention(q, k, v, window, *, align="top_left"):
    n_q, n_k = q.shape[-2], k.shape[-2]
    _check(n_q, n_k, window, align)
    out_dtype = q.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    offset = 0 if align == "top_left" else n_k - n_q
    block = max(window, 64)
    outputs = []
    for start in range(0, n_q, block):
        stop = min(start + block, n_q)
        first = max(0, start + offset - window)
        last = stop + offset
        scores = q[..., start:stop, :] @ k[..., first:last, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        p = torch.arange(start + offset, stop + offset).unsqueeze(1)
        j = torch.arange(first, last).unsqueeze(0)
        scores = scores.masked_fill(~((j < p) & (j >= p - window)), float("-inf"))
        outputs.append(torch.softmax(scores, dim=-1) @ v[..., first:last, :])
    return torch.cat(outputs, dim=-2).to(out_dtype)
