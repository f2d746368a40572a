# expect: failed
# why: the kept elements are divided by p, the drop probability, instead of by 1 - p, the keep
#   probability (the same number at p = 0.5 only)
# caught-by: test_worked_example, test_rule_random_shapes, test_expectation_preserved
import torch

HALF = (torch.float16, torch.bfloat16)


def dropout(x, p=0.5, training=True, seed=0):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training:
        return x
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    keep = u >= p
    scale = 1.0 / p if p > 0.0 else 1.0  # the mistake: 1 / p instead of 1 / (1 - p)
    compute = torch.float32 if x.dtype in HALF else x.dtype
    return (x.to(compute) * keep * scale).to(x.dtype)
