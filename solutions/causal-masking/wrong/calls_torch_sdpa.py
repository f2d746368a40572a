# expect: rejected
# why: hands the work to torch's F.scaled_dot_product_attention, which the exercise forbids
import torch
import torch.nn.functional as F


def causal_mask(n_q, n_k, *, align="top_left", device=None):
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"unknown align {align!r}")
    offset = 0 if align == "top_left" else n_k - n_q
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=offset)


def scaled_dot_product_attention(q, k, v, *, mask=None, is_causal=False, align="top_left"):
    allowed = causal_mask(q.shape[-2], k.shape[-2], align=align) if is_causal else None
    if mask is not None:
        allowed = mask if allowed is None else allowed & mask
    out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=allowed)
    return torch.nan_to_num(out).to(q.dtype)
