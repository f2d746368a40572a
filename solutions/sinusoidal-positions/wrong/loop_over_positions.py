# expect: too_slow
# why: correct, but computes one row at a time in a Python loop over the positions: the number of
#   tensor ops grows with the number of positions
# caught-by: test_vectorised
import torch


def sinusoidal_positions(positions, d_model, dtype=torch.float32):
    if d_model <= 0 or d_model % 2:
        raise ValueError("d_model must be a positive even number")
    inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    out = torch.empty(positions.shape[0], d_model, dtype=dtype)
    for r, pos in enumerate(positions.tolist()):
        angles = pos * inv_freq
        out[r, 0::2] = angles.sin().to(dtype)
        out[r, 1::2] = angles.cos().to(dtype)
    return out
