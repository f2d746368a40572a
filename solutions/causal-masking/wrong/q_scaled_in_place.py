# expect: failed
# why: scales q in place (q *= 1 / sqrt(d)): the output is right, but the caller's float32 q is
#   changed, and the next call with it (a KV cache, the next layer, a retry) is scaled twice
# caught-by: test_inputs_unchanged
import math

import torch

ALIGNMENTS = ("top_left", "bottom_right")
HALF = (torch.float16, torch.bfloat16)


def causal_mask(n_q: int, n_k: int, *, align: str = "top_left", device=None) -> torch.Tensor:
    """Bool (n_q, n_k), True where query i may attend key j."""
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be 'top_left' or 'bottom_right', got {align!r}")
    # bottom_right slides the diagonal so that the last query lines up with the last key
    offset = 0 if align == "top_left" else n_k - n_q
    i = torch.arange(n_q, device=device).unsqueeze(1)  # (n_q, 1)
    j = torch.arange(n_k, device=device).unsqueeze(0)  # (1, n_k)
    return j <= i + offset  # (n_q, n_k)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    align: str = "top_left",
) -> torch.Tensor:
    """softmax(q @ k^T / sqrt(d) over the allowed keys) @ v, for any leading dims."""
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be 'top_left' or 'bottom_right', got {align!r}")
    out_dtype = q.dtype
    if out_dtype in HALF:
        # float16 overflows past 65504, and half-precision sums round badly: work in float32
        q, k, v = q.float(), k.float(), v.float()
    n_q, d = q.shape[-2], q.shape[-1]
    n_k = k.shape[-2]

    q *= 1.0 / math.sqrt(d)  # in place: the caller's q (float32) is scaled too
    att = q @ k.transpose(-2, -1)  # (..., n_q, n_k)

    allowed = None  # True = may attend; None = every key may be attended
    if is_causal:
        allowed = causal_mask(n_q, n_k, align=align, device=q.device)  # (n_q, n_k)
    if mask is not None:
        # both apply: a key is attended only where the causal rule and the mask both allow it
        allowed = mask if allowed is None else allowed & mask  # broadcasts to (..., n_q, n_k)
    if allowed is not None:
        blocked = ~allowed
        att = att.masked_fill(blocked, float("-inf"))  # exp(-inf) = 0: no weight at all

    att = torch.softmax(att, dim=-1)
    if allowed is not None:
        # a row with no allowed key is all -inf, and softmax makes it NaN (0 / 0): zero it
        att = att.masked_fill(blocked, 0.0)
    y = att @ v  # (..., n_q, n_k) @ (..., n_k, d_v) -> (..., n_q, d_v)
    return y.to(out_dtype)
