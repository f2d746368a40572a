# expect: failed
# why: returns the table of positions 0..n-1 whatever positions it is given, as a precomputed
#   "pe[:n]" slice does: wrong for a KV-cache step, packed sequences, or any offset
# caught-by: test_kv_cache_position, test_kv_cache_steps, test_packed_sequences
import torch


def sinusoidal_positions(positions, d_model, dtype=torch.float32):
    if d_model <= 0 or d_model % 2:
        raise ValueError("d_model must be a positive even number")
    inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = torch.arange(positions.shape[0], dtype=torch.float64)[:, None] * inv_freq
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2).to(dtype)
