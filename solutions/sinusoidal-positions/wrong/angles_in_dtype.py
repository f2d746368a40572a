# expect: failed
# why: computes the frequencies and the angles in the requested dtype: in float16 a position past
#   65504 is inf and its sine NaN (and past 2048 positions are rounded); in float32 far positions
#   are misplaced by up to 0.03 rad
# caught-by: test_float16_far_positions_are_finite, test_far_positions, test_half_precision_random_positions
import torch


def sinusoidal_positions(positions, d_model, dtype=torch.float32):
    if d_model <= 0 or d_model % 2:
        raise ValueError("d_model must be a positive even number")
    inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=dtype) / d_model)
    angles = positions.to(dtype)[:, None] * inv_freq
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)
