"""Inverted dropout with a seeded generator, as torch.nn.functional.dropout scales it.

Fill in the function below. Read README.md first: it explains every convention used here.
"""

import torch


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, seed: int = 0) -> torch.Tensor:
    """Zero each element of x with probability p, and scale the kept ones by 1 / (1 - p).

    p must be in [0, 1]: anything else (negative, above 1, NaN) raises ValueError, in training
    and in evaluation mode alike.

    training=False: return x itself, unchanged (dropout is the identity at evaluation time).

    training=True, the rule (exactly this, so that the output can be checked):
        generator = torch.Generator().manual_seed(seed)
        u = torch.rand(x.shape, generator=generator, dtype=torch.float32)   # always float32, CPU
        keep = u >= p                          # kept with probability 1 - p
        scale = 1 / (1 - p), or 0.0 when p == 1 (zeros, never 0 / 0 = NaN)
        return x * keep * scale                # in x's dtype

    x: any shape (0-d and empty included); the output has x's shape and dtype. float16 and
    bfloat16 inputs are multiplied in float32 and cast back once, at the end.
    Gradients flow through the kept elements only, scaled by 1 / (1 - p): use tensor operations.
    x is left as it was: no in-place operations on it (x.float() is x itself when x is float32).

    Not allowed: torch.nn.functional.dropout, torch.nn.Dropout, torch.dropout, torch.bernoulli.
    """
    raise NotImplementedError("dropout: draw u with the seeded generator, keep u >= p, scale by 1 / (1 - p)")
