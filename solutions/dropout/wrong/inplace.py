# expect: failed
# why: drops and rescales in place to save memory (like F.dropout(..., inplace=True)): for a float32
#   x, x.to(torch.float32) is x itself, so the caller's tensor (the residual stream) is overwritten,
#   and autograd refuses in-place writes into a leaf that requires grad
# caught-by: test_input_unchanged
import torch

HALF = (torch.float16, torch.bfloat16)


def dropout(x, p=0.5, training=True, seed=0):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training:
        return x
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    keep = u >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    out = x.to(torch.float32 if x.dtype in HALF else x.dtype)  # x itself for float32 and float64
    out[~keep] = 0.0  # the mistake: writes into x
    out *= scale
    return out.to(x.dtype)
