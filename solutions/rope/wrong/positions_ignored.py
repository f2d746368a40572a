# expect: failed
# why: ignores token_positions and rotates row t by t (0 .. seq-1), as if every call started a
#   fresh sequence: wrong for a KV-cache step or a packed batch
# caught-by: test_random_shapes, test_kv_cache_step, test_decoding_steps, test_packed_sequences
import torch


def apply_rope(x, token_positions, *, theta=10000.0):
    d, seq = x.shape[-1], x.shape[-2]
    if d % 2 != 0:
        raise ValueError("d must be even")
    i = torch.arange(d // 2, dtype=torch.float32)
    inv_freq = theta ** (-2 * i / d)
    angles = torch.arange(seq, dtype=torch.float32).unsqueeze(-1) * inv_freq  # (seq, d/2)
    cos, sin = angles.cos(), angles.sin()
    xf = x.float()
    even, odd = xf[..., 0::2], xf[..., 1::2]
    out = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
    return out.to(x.dtype)
