# expect: failed
# why: chunked attention on absolute positions: the positions are cut into blocks of 64
#   (0 .. 63, 64 .. 127, ...) and each query attends only the keys of its own block, without the
#   w - 1 keys before the block. Right while every window fits inside one block; a bottom-right
#   call whose queries start in the middle of a block (or cross into the next) loses keys
# caught-by: test_more_than_one_block, test_fewer_queries_than_keys, test_kv_cache_decoding
import math

import torch

BLOCK = 64


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
    offset = 0 if align == "top_left" else n_k - n_q
    outputs = []
    pos = offset  # the position of the next query
    while pos < offset + n_q:
        first = pos // BLOCK * BLOCK  # the block's first position: the keys before it are lost
        last = min(first + BLOCK, offset + n_q)  # one past the last query (and key) of the block
        scores = q[..., pos - offset : last - offset, :] @ k[..., first:last, :].transpose(-2, -1)
        p = torch.arange(pos, last).unsqueeze(1)
        j = torch.arange(first, last).unsqueeze(0)
        scores = scores.masked_fill(~((j <= p) & (j > p - window)), float("-inf"))
        outputs.append(torch.softmax(scores / math.sqrt(q.shape[-1]), dim=-1) @ v[..., first:last, :])
        pos = last
    return torch.cat(outputs, dim=-2).to(out_dtype)
