# expect: failed
# why: multiplies the position by 10000^(2i/d) instead of dividing by it: the frequencies grow from
#   1 to almost 10000 radians per position instead of shrinking towards 1/10000
# caught-by: test_worked_example, test_random_widths_and_positions, test_widths
import torch


def sinusoidal_positions(positions, d_model, dtype=torch.float32):
    if d_model <= 0 or d_model % 2:
        raise ValueError("d_model must be a positive even number")
    freq = 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = positions.double()[:, None] * freq
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2).to(dtype)
