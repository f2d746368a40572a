# expect: failed
# why: writes the rotated pairs back into x (x[..., 0::2] = ...), and for a float32 x the "copy"
#   x.float() is x itself: the caller's queries and keys are overwritten (and autograd refuses
#   the in-place write into a tensor that requires grad)
# caught-by: test_inputs_unchanged, test_gradients
import torch


def apply_rope(x, token_positions, *, theta=10000.0):
    d = x.shape[-1]
    if d % 2:
        raise ValueError("odd d")
    out_dtype = x.dtype
    work = x.to(torch.promote_types(x.dtype, torch.float32))  # x itself when x is float32
    inv_freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = token_positions.to(torch.float32)[..., None] * inv_freq
    cos, sin = angles.cos(), angles.sin()
    a, b = work[..., 0::2].clone(), work[..., 1::2].clone()
    work[..., 0::2] = a * cos - b * sin
    work[..., 1::2] = a * sin + b * cos
    return work.to(out_dtype)
