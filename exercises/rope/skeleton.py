"""Rotary position embeddings (RoPE), with adjacent feature pairs.

Fill in the function below. Read README.md first: it explains every convention used here.
"""

import torch


def apply_rope(x: torch.Tensor, token_positions: torch.Tensor, *, theta: float = 10000.0) -> torch.Tensor:
    """Rotate every adjacent pair of features of x by an angle proportional to its token's position.

    x:               (..., seq, d), any number of leading dims (also none); d must be even, an odd
                     d raises ValueError.
    token_positions: an integer tensor (int64 or int32) broadcastable to x.shape[:-1] = (..., seq):
                     the position of every token. Arbitrary non-negative integers, in any order,
                     repeats allowed; NOT necessarily 0..seq-1 (a KV-cache step has seq = 1 and a
                     position like 57; packed sequences restart at 0). For x of shape
                     (batch, heads, seq, d), positions may be (seq,), (batch, 1, seq) or
                     (batch, heads, seq).
    theta:           the base of the frequencies (10000 in the original paper, 500000 in Llama 3).

    Pair i is (x[..., 2i], x[..., 2i+1]), for i = 0 .. d/2 - 1 (adjacent pairs, not halves). At
    position pos it is rotated counter-clockwise by the angle

        angle = pos * theta ** (-2 * i / d)

        out[..., 2i]   = x[..., 2i] * cos(angle) - x[..., 2i+1] * sin(angle)
        out[..., 2i+1] = x[..., 2i] * sin(angle) + x[..., 2i+1] * cos(angle)

    Returns a tensor of x's shape and dtype. Compute the angles, cos and sin in float32 (half
    precision cannot represent large angles); rotate (in float32, best), then cast back to x's
    dtype. The result must be differentiable with respect to x, and x must be left as it was:
    build a new tensor, never write into x (x.float() is x itself when x is float32).

    No Python loop over positions: compute all the angles at once, positions[..., None] * inv_freq
    has shape (..., seq, d/2).
    """
    raise NotImplementedError(
        "apply_rope: rotate every adjacent pair (x[2i], x[2i+1]) by pos * theta^(-2i/d)"
    )
