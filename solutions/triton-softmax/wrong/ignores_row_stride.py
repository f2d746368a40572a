# expect: failed
# why: assumes the rows are packed one after the other and steps from row to row by n_cols: right
#   for a contiguous tensor, but a slice of a wider tensor (x[:, a:b], the rows of a padded buffer)
#   has rows x.stride(0) elements apart, so every row after the first reads the wrong elements
# caught-by: test_strided_rows
import torch
import triton
import triton.language as tl


@triton.jit
def softmax_kernel(out_ptr, x_ptr, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    # the mistake: row * n_cols, for the input as for the output
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=-float("inf")).to(tl.float32)
    z = x - tl.max(x, axis=0)
    numerator = tl.exp(z)
    tl.store(out_ptr + row * n_cols + cols, numerator / tl.sum(numerator, axis=0), mask=mask)


def softmax(x):
    n_rows, n_cols = x.shape
    out = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    block_size = triton.next_power_of_2(n_cols)
    softmax_kernel[(n_rows,)](out, x, n_cols, BLOCK_SIZE=block_size)
    return out
