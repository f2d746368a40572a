"""Sliding-window attention, one block of queries at a time: the reference solution."""

import math

import torch

ALIGNMENTS = ("top_left", "bottom_right")
HALF = (torch.float16, torch.bfloat16)
MIN_BLOCK = 128  # queries per block at least: few Python iterations even when the window is tiny


def window_mask(n_q: int, n_k: int, window: int, *, align: str = "top_left", device=None) -> torch.Tensor:
    """Bool (n_q, n_k), True where query i may attend key j: i - window < j <= i (positions)."""
    _check(n_q, n_k, window, align)
    offset = 0 if align == "top_left" else n_k - n_q
    i = torch.arange(n_q, device=device).unsqueeze(1) + offset  # (n_q, 1): each query's position
    j = torch.arange(n_k, device=device).unsqueeze(0)  # (1, n_k)
    return (j <= i) & (j > i - window)


def sliding_window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, *, align: str = "top_left"
) -> torch.Tensor:
    """Each query attends the `window` latest keys up to its own position, itself included."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    _check(n_q, n_k, window, align)
    out_dtype = q.dtype
    if out_dtype in HALF:
        # float16 overflows past 65504 and half-precision sums round badly: work in float32
        q, k, v = q.float(), k.float(), v.float()
    offset = 0 if align == "top_left" else n_k - n_q  # the position of query 0
    scale = 1.0 / math.sqrt(q.shape[-1])
    block = max(window, MIN_BLOCK)  # depends on the window only, never on the length

    outputs = []
    for start in range(0, n_q, block):
        stop = min(start + block, n_q)
        # the block's queries sit at positions start + offset .. stop - 1 + offset; together they
        # see the keys from window - 1 before the first of them up to the last of them
        first = max(0, start + offset - window + 1)
        last = stop + offset  # one past the last key
        scores = (q[..., start:stop, :] @ k[..., first:last, :].transpose(-2, -1)) * scale
        i = torch.arange(start + offset, stop + offset, device=q.device).unsqueeze(1)  # query positions
        j = torch.arange(first, last, device=q.device).unsqueeze(0)  # key positions
        allowed = (j <= i) & (j > i - window)  # (block, block + window - 1) at most
        # every row allows its own key, so no row is all -inf and the softmax never gives NaN
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        outputs.append(weights @ v[..., first:last, :])
    return torch.cat(outputs, dim=-2).to(out_dtype)


def _check(n_q: int, n_k: int, window: int, align: str) -> None:
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be 'top_left' or 'bottom_right', got {align!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if not 1 <= n_q <= n_k:
        raise ValueError(f"need 1 <= n_q <= n_k, got n_q={n_q}, n_k={n_k}")
