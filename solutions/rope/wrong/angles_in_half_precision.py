# expect: failed
# why: builds the frequencies and angles in the input's dtype: in bfloat16 or float16 an angle
#   such as 1234.5 rad is off by whole radians, so half-precision inputs at real positions are
#   rotated by garbage
# caught-by: test_dtypes, test_long_positions_in_half_precision
import torch


def apply_rope(x, token_positions, *, theta=10000.0):
    d = x.shape[-1]
    if d % 2 != 0:
        raise ValueError("d must be even")
    i = torch.arange(d // 2, dtype=x.dtype)
    inv_freq = theta ** (-2 * i / d)
    angles = token_positions.to(x.dtype).unsqueeze(-1) * inv_freq  # (..., seq, d/2), in x.dtype
    cos, sin = angles.cos(), angles.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
