# expect: failed
# why: divides by 1 - p as a tensor division, x * keep / (1 - p): for p = 1 nothing is kept and
#   every element is 0 / 0 = NaN (or +-inf), where the answer is zeros
# caught-by: test_p_one_gives_zeros, test_p_one
import torch

HALF = (torch.float16, torch.bfloat16)


def dropout(x, p=0.5, training=True, seed=0):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training:
        return x
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    keep = u >= p
    compute = torch.float32 if x.dtype in HALF else x.dtype
    return (x.to(compute) * keep / (1.0 - p)).to(x.dtype)  # the mistake: 0 / 0 when p == 1
