# expect: failed
# why: gives every dimension j its own exponent, pos / 10000^(j/d), instead of 2i/d shared by the
#   two dimensions of pair i: the cosine of each pair runs at a different frequency from its sine
# caught-by: test_worked_example, test_random_widths_and_positions, test_dot_products_depend_on_the_offset
import torch


def sinusoidal_positions(positions, d_model, dtype=torch.float32):
    if d_model <= 0 or d_model % 2:
        raise ValueError("d_model must be a positive even number")
    j = torch.arange(d_model, dtype=torch.float64)
    angles = positions.double()[:, None] / 10000.0 ** (j / d_model)  # (n, d): one exponent per dimension
    return torch.where(j % 2 == 0, angles.sin(), angles.cos()).to(dtype)
