"""Sinusoidal position encodings, as in the original Transformer (Vaswani et al., 2017, section 3.5).

Fill in the function below. Read README.md first: it explains every convention used here.
"""

import torch


def sinusoidal_positions(
    positions: torch.Tensor, d_model: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The sinusoidal encoding of every position in `positions`, one row per position.

    positions: a 1-D integer tensor (int64 or int32) of shape (n,), n >= 0. Arbitrary
               non-negative positions, in any order, repeats allowed, up to 10^6 and beyond;
               NOT necessarily 0..n-1 (a KV-cache step asks for one position such as [57],
               packed sequences restart at 0).
    d_model:   the width of the encoding; a positive even integer. Anything else (odd, 0,
               negative) raises ValueError.
    dtype:     the dtype of the result (float32, float64, float16 or bfloat16).

    Returns a tensor of shape (n, d_model) and dtype `dtype` whose row r is the encoding of
    pos = positions[r]. For i = 0 .. d_model/2 - 1 (interleaved: sines on the even dimensions,
    cosines on the odd ones; base 10000; the exponent 2i/d_model is the same for both dimensions
    of pair i):

        out[r, 2i]     = sin(pos * 10000 ** (-2i / d_model))
        out[r, 2i + 1] = cos(pos * 10000 ** (-2i / d_model))

    Compute the frequencies, the angles, the sines and the cosines in float64 (float16 overflows
    past 65504, and float32 misplaces the angle of position 10^6 by up to 0.03 rad), then cast the
    table to `dtype` once, at the end. Leave `positions` as it was.

    No Python loop over the positions: positions[:, None] * frequencies is (n, d_model/2), one
    angle per (position, pair); torch.stack((sin, cos), dim=-1).flatten(-2) interleaves them.
    """
    raise NotImplementedError("sinusoidal_positions: sin on the even dimensions, cos on the odd ones")
