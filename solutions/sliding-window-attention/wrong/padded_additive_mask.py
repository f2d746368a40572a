# expect: failed
# why: vectorised blocks with the queries padded to a whole number of blocks and the band applied
#   as an additive -inf bias: padded rows past the end have no allowed key, their softmax is NaN,
#   and although the rows are sliced off (the output is right) the NaN flows back through the
#   addition into the gradients of k and v
# caught-by: test_gradients
import math

import torch
import torch.nn.functional as F


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
    size = max(window, 64)  # queries per block
    span = size + window - 1  # keys a block can see
    blocks = -(-n_q // size)
    q_blocks = F.pad(q, (0, 0, 0, blocks * size - n_q)).unflatten(-2, (blocks, size))  # (..., n, B, d)

    # the keys at positions offset - window + 1 .. offset + blocks * size - 1, zero-padded where
    # they fall outside 0 .. n_k - 1
    first = offset - window + 1
    front = max(0, -first)
    k_used, v_used = k[..., max(first, 0) :, :], v[..., max(first, 0) :, :]
    back = blocks * size + window - 1 - front - k_used.shape[-2]
    k_used = F.pad(k_used, (0, 0, front, back))
    v_used = F.pad(v_used, (0, 0, front, back))
    k_blocks = k_used.unfold(-2, span, size).transpose(-1, -2)  # (..., n, span, d)
    v_blocks = v_used.unfold(-2, span, size).transpose(-1, -2)

    scores = q_blocks @ k_blocks.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., n, B, span)
    r = torch.arange(size).unsqueeze(1)
    t = torch.arange(span).unsqueeze(0)
    key_pos = first + torch.arange(blocks).view(blocks, 1, 1) * size + t
    ok = (t >= r) & (t < r + window) & (key_pos >= 0) & (key_pos < n_k)
    bias = torch.zeros(ok.shape, dtype=scores.dtype).masked_fill(~ok, float("-inf"))
    out = (torch.softmax(scores + bias, dim=-1) @ v_blocks).flatten(-3, -2)
    return out[..., :n_q, :].to(out_dtype)
