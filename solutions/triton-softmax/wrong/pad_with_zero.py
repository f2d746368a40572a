# expect: failed
# why: masks the tail but pads it with other=0.0, the load's usual filler: the padded lanes then
#   add exp(0 - max) each to the row's sum, so every probability is too small whenever the row
#   length is not a power of two (the filler of a max-then-sum must be -inf, whose exp is 0)
# caught-by: test_ragged_rows, test_random_shapes
import torch
import triton
import triton.language as tl


@triton.jit
def softmax_kernel(out_ptr, x_ptr, x_row_stride, out_row_stride, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=mask, other=0.0).to(tl.float32)  # the mistake
    z = x - tl.max(x, axis=0)
    numerator = tl.exp(z)
    tl.store(out_ptr + row * out_row_stride + cols, numerator / tl.sum(numerator, axis=0), mask=mask)


def softmax(x):
    n_rows, n_cols = x.shape
    out = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    block_size = triton.next_power_of_2(n_cols)
    softmax_kernel[(n_rows,)](out, x, x.stride(0), out.stride(0), n_cols, BLOCK_SIZE=block_size)
    return out
