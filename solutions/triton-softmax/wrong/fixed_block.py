# expect: failed
# why: a fixed BLOCK_SIZE = 256, "a good block size", instead of next_power_of_2(n_cols): with one
#   block per row, a row longer than the block is cut short, its first 256 entries normalised among
#   themselves and the rest never written
# caught-by: test_ragged_rows, test_row_lengths
import torch
import triton
import triton.language as tl

BLOCK_SIZE = 256


@triton.jit
def softmax_kernel(out_ptr, x_ptr, x_row_stride, out_row_stride, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=mask, other=-float("inf")).to(tl.float32)
    z = x - tl.max(x, axis=0)
    numerator = tl.exp(z)
    tl.store(out_ptr + row * out_row_stride + cols, numerator / tl.sum(numerator, axis=0), mask=mask)


def softmax(x):
    n_rows, n_cols = x.shape
    out = torch.zeros((n_rows, n_cols), dtype=x.dtype, device=x.device)
    softmax_kernel[(n_rows,)](out, x, x.stride(0), out.stride(0), n_cols, BLOCK_SIZE=BLOCK_SIZE)
    return out
