# expect: failed
# why: align is checked but never used: query i is taken to be position i even for bottom_right,
#   so a decoding step over a KV cache attends the first keys instead of the latest ones
# caught-by: test_bottom_right_decoding_step, test_fewer_queries_than_keys, test_kv_cache_decoding
import math

import torch


def _check(n_q, n_k, window, align):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    if window < 1 or not 1 <= n_q <= n_k:
        raise ValueError("bad sizes")


def window_mask(n_q, n_k, window, *, align="top_left", device=None):
    _check(n_q, n_k, window, align)
    i = torch.arange(n_q, device=device).unsqueeze(1)
    j = torch.arange(n_k, device=device).unsqueeze(0)
    return (j <= i) & (j > i - window)


def sliding_window_attention(q, k, v, window, *, align="top_left"):
    n_q, n_k = q.shape[-2], k.shape[-2]
    _check(n_q, n_k, window, align)
    out_dtype = q.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    block = max(window, 64)
    outputs = []
    for start in range(0, n_q, block):
        stop = min(start + block, n_q)
        first = max(0, start - window + 1)
        scores = q[..., start:stop, :] @ k[..., first:stop, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        i = torch.arange(start, stop).unsqueeze(1)
        j = torch.arange(first, stop).unsqueeze(0)
        scores = scores.masked_fill(~((j <= i) & (j > i - window)), float("-inf"))
        outputs.append(torch.softmax(scores, dim=-1) @ v[..., first:stop, :])
    return torch.cat(outputs, dim=-2).to(out_dtype)
