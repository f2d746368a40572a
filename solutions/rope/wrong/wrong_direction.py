# expect: failed
# why: the sine has the wrong sign: every pair is rotated by -angle (clockwise) instead of +angle
# caught-by: test_random_shapes, test_by_hand
import torch


def apply_rope(x, token_positions, *, theta=10000.0):
    d = x.shape[-1]
    if d % 2 != 0:
        raise ValueError("d must be even")
    i = torch.arange(d // 2, dtype=torch.float32)
    inv_freq = theta ** (-2 * i / d)
    angles = token_positions.float().unsqueeze(-1) * inv_freq  # (..., seq, d/2)
    cos, sin = angles.cos(), angles.sin()
    xf = x.float()
    even, odd = xf[..., 0::2], xf[..., 1::2]
    out = torch.stack((even * cos + odd * sin, odd * cos - even * sin), dim=-1).flatten(-2)
    return out.to(x.dtype)
