# expect: failed
# why: builds the table as two halves, all the sines then all the cosines (torch.cat([sin, cos], -1),
#   as some code bases do), instead of the paper's interleaved sin / cos pairs
# caught-by: test_worked_example, test_random_widths_and_positions, test_shift_is_a_rotation
import torch


def sinusoidal_positions(positions, d_model, dtype=torch.float32):
    if d_model <= 0 or d_model % 2:
        raise ValueError("d_model must be a positive even number")
    inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = positions.double()[:, None] * inv_freq
    return torch.cat((angles.sin(), angles.cos()), dim=-1).to(dtype)
