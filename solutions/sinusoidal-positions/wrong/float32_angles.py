# expect: failed
# why: the Annotated Transformer's table: frequencies exp(-2i ln(10000) / d) and angles in float32.
#   Right to 1e-6 at small positions, but float32 misplaces pos * w_i by ~3e-5 at 1000, 2e-3 at
#   65504 and 2e-2 at 10^6, in every output dtype
# caught-by: test_far_positions, test_random_widths_and_positions, test_float64_precision
import math

import torch


def sinusoidal_positions(positions, d_model, dtype=torch.float32):
    if d_model <= 0 or d_model % 2:
        raise ValueError("d_model must be a positive even number")
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model))
    position = positions.float().unsqueeze(1)
    pe = torch.zeros(positions.shape[0], d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.to(dtype)
