# expect: failed
# why: frequencies theta^(-i/d) for i = 0 .. d/2 - 1 instead of theta^(-2i/d): the pair index is
#   used where the feature index 2i belongs, so the slowest pair turns far too fast
# caught-by: test_random_shapes, test_by_hand
import torch


def apply_rope(x, token_positions, *, theta=10000.0):
    d = x.shape[-1]
    if d % 2 != 0:
        raise ValueError("d must be even")
    i = torch.arange(d // 2, dtype=torch.float32)
    inv_freq = theta ** (-i / d)
    angles = token_positions.float().unsqueeze(-1) * inv_freq  # (..., seq, d/2)
    cos, sin = angles.cos(), angles.sin()
    xf = x.float()
    even, odd = xf[..., 0::2], xf[..., 1::2]
    out = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
    return out.to(x.dtype)
