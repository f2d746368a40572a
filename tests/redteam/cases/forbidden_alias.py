# expect: failed
# threat: reaches the forbidden fused attention kernel through an alias the static check cannot see
# target: causal-masking
import torch

_fused = getattr(torch._C._nn, "scaled_dot_product" + "_attention")  # not a name the static check sees
ALIGN = ("top_left", "bottom_right")


def causal_mask(n_q, n_k, *, align="top_left", device=None):
    if align not in ALIGN:
        raise ValueError(align)
    off = 0 if align == "top_left" else n_k - n_q
    return torch.arange(n_k, device=device)[None, :] <= torch.arange(n_q, device=device)[:, None] + off


def scaled_dot_product_attention(q, k, v, *, mask=None, is_causal=False, align="top_left"):
    if align not in ALIGN:
        raise ValueError(align)
    dt = q.dtype
    if dt in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    allowed = None
    if is_causal:
        allowed = causal_mask(q.shape[-2], k.shape[-2], align=align, device=q.device)
    if mask is not None:
        allowed = mask if allowed is None else allowed & mask
    y = _fused(q, k, v, attn_mask=allowed)
    if allowed is not None:
        y = y.masked_fill(~allowed.any(-1, keepdim=True), 0.0)
    return y.to(dt)
