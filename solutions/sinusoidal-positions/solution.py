"""Sinusoidal position encodings (Vaswani et al., 2017, section 3.5): the reference solution."""

import torch

BASE = 10000.0


def sinusoidal_positions(
    positions: torch.Tensor, d_model: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """PE[n, 2i] = sin(pos_n / BASE^(2i/d)), PE[n, 2i+1] = cos(pos_n / BASE^(2i/d)), in `dtype`."""
    if d_model <= 0 or d_model % 2 != 0:
        raise ValueError(f"d_model must be a positive even number, got {d_model}")
    # float64 for the angles: an integer position is exact there (up to 2^53), and pos * inv_freq
    # keeps about 16 significant digits, so even position 10^6 is placed to within 1e-10 rad
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64, device=positions.device)  # (d/2,): 0, 2, 4, ...
    inv_freq = BASE ** (-two_i / d_model)  # (d/2,) from 1 down towards 1/BASE
    angles = positions.to(torch.float64).unsqueeze(-1) * inv_freq  # (n, d/2): one angle per (pos, pair)
    # interleave: dimension 2i gets the sine, dimension 2i + 1 the cosine of the same angle
    pe = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (n, d/2, 2) -> (n, d)
    return pe.to(dtype)  # rounded once, at the end
