# expect: too_slow
# why: correct, but unfused: one kernel finds each row's max, a second writes exp(x - max) to a
#   float32 buffer and the row sums, a third reads that buffer back and divides. Three launches, and
#   the row crosses DRAM five times (x twice, the buffer twice, the output once) instead of twice
# caught-by: test_one_launch, test_memory_traffic
import torch
import triton
import triton.language as tl


@triton.jit
def row_max_kernel(max_ptr, x_ptr, x_row_stride, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=cols < n_cols, other=-float("inf"))
    tl.store(max_ptr + row, tl.max(x.to(tl.float32), axis=0))


@triton.jit
def exp_sum_kernel(e_ptr, sum_ptr, x_ptr, max_ptr, x_row_stride, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=mask, other=-float("inf")).to(tl.float32)
    e = tl.exp(x - tl.load(max_ptr + row))
    tl.store(e_ptr + row * n_cols + cols, e, mask=mask)
    tl.store(sum_ptr + row, tl.sum(e, axis=0))


@triton.jit
def normalise_kernel(out_ptr, e_ptr, sum_ptr, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    e = tl.load(e_ptr + row * n_cols + cols, mask=mask, other=0.0)
    tl.store(out_ptr + row * n_cols + cols, e / tl.load(sum_ptr + row), mask=mask)


def softmax(x):
    n_rows, n_cols = x.shape
    block_size = triton.next_power_of_2(n_cols)
    row_max = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    row_sum = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    e = torch.empty((n_rows, n_cols), dtype=torch.float32, device=x.device)
    out = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    row_max_kernel[(n_rows,)](row_max, x, x.stride(0), n_cols, BLOCK_SIZE=block_size)
    exp_sum_kernel[(n_rows,)](e, row_sum, x, row_max, x.stride(0), n_cols, BLOCK_SIZE=block_size)
    normalise_kernel[(n_rows,)](out, e, row_sum, n_cols, BLOCK_SIZE=block_size)
    return out
