# expect: failed
# why: keeps the elements where u < p, reading p as the probability of keeping: a fraction p of the
#   elements survive instead of 1 - p, and they are the ones the rule drops
# caught-by: test_worked_example, test_rule_random_shapes, test_expectation_preserved
import torch

HALF = (torch.float16, torch.bfloat16)


def dropout(x, p=0.5, training=True, seed=0):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training:
        return x
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    keep = u < p  # the mistake: these are the dropped ones
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    compute = torch.float32 if x.dtype in HALF else x.dtype
    return (x.to(compute) * keep * scale).to(x.dtype)
