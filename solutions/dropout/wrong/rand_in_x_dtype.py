# expect: failed
# why: draws u with torch.rand_like(x), in x's dtype: right for float32, but for float16 and
#   bfloat16 the generator gives other numbers, so the mask differs from the rule's (and from the
#   float32 mask of the same seed); the public float16 example happens to keep the same elements
# caught-by: test_dtypes
import torch

HALF = (torch.float16, torch.bfloat16)


def dropout(x, p=0.5, training=True, seed=0):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training:
        return x
    u = torch.rand_like(x, generator=torch.Generator().manual_seed(seed))  # the mistake: x's dtype
    keep = u >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    compute = torch.float32 if x.dtype in HALF else x.dtype
    return (x.to(compute) * keep * scale).to(x.dtype)
