# expect: failed
# why: non-inverted dropout: the kept elements are not rescaled by 1 / (1 - p), so the output is
#   (1 - p) times too small on average during training, and the next layer sees a shift it never
#   sees at evaluation time
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
    compute = torch.float32 if x.dtype in HALF else x.dtype
    return (x.to(compute) * keep).to(x.dtype)  # the mistake: no 1 / (1 - p)
