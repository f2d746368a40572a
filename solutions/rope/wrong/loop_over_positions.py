# expect: too_slow
# why: correct, but rotates one position at a time in a Python loop: the number of tensor ops
#   grows with the sequence length
# caught-by: test_vectorised
import torch


def apply_rope(x, token_positions, *, theta=10000.0):
    d, seq = x.shape[-1], x.shape[-2]
    if d % 2 != 0:
        raise ValueError("d must be even")
    i = torch.arange(d // 2, dtype=torch.float32)
    inv_freq = theta ** (-2 * i / d)  # (d/2,)
    positions = token_positions.expand(*x.shape[:-1])  # (..., seq)
    xf = x.float()
    rows = []
    for t in range(seq):
        angles = positions[..., t : t + 1].float().unsqueeze(-1) * inv_freq  # (..., 1, d/2)
        cos, sin = angles.cos(), angles.sin()
        even, odd = xf[..., t : t + 1, 0::2], xf[..., t : t + 1, 1::2]
        rows.append(torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2))
    return torch.cat(rows, dim=-2).to(x.dtype)
