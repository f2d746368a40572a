# expect: failed
# why: pairs feature i with feature i + d/2 (the GPT-NeoX "rotate_half" layout) instead of the
#   adjacent features 2i and 2i + 1
# caught-by: test_random_shapes, test_by_hand, test_adjacent_pairs_keep_their_norm
import torch


def apply_rope(x, token_positions, *, theta=10000.0):
    d = x.shape[-1]
    if d % 2 != 0:
        raise ValueError("d must be even")
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))  # (d/2,)
    angles = token_positions.float().unsqueeze(-1) * inv_freq  # (..., seq, d/2)
    cos = torch.cat((angles.cos(), angles.cos()), dim=-1)  # (..., seq, d)
    sin = torch.cat((angles.sin(), angles.sin()), dim=-1)
    xf = x.float()
    x1, x2 = xf[..., : d // 2], xf[..., d // 2 :]
    rotated = torch.cat((-x2, x1), dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)
