# expect: failed
# why: ignores training: evaluation also drops and rescales, so a trained model's predictions are
#   noisy and change from call to call
# caught-by: test_eval_mode_is_identity, test_eval_mode
import torch

HALF = (torch.float16, torch.bfloat16)


def dropout(x, p=0.5, training=True, seed=0):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    # the mistake: no early return when training is False
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    keep = u >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    compute = torch.float32 if x.dtype in HALF else x.dtype
    return (x.to(compute) * keep * scale).to(x.dtype)
