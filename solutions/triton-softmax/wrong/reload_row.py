# expect: too_slow
# why: correct, but loads the row twice, once for the max and again for the exponentials, as the
#   formula reads: the point of fusing is that the row stays in registers after one load, and a
#   second load is a second trip to memory for the whole input (1.5x the traffic of one load and
#   one store)
# caught-by: test_memory_traffic
import torch
import triton
import triton.language as tl


@triton.jit
def softmax_kernel(out_ptr, x_ptr, x_row_stride, out_row_stride, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    ptrs = x_ptr + row * x_row_stride + cols
    row_max = tl.max(tl.load(ptrs, mask=mask, other=-float("inf")).to(tl.float32), axis=0)
    # the mistake: the row is loaded again instead of kept from the first load
    numerator = tl.exp(tl.load(ptrs, mask=mask, other=-float("inf")).to(tl.float32) - row_max)
    tl.store(out_ptr + row * out_row_stride + cols, numerator / tl.sum(numerator, axis=0), mask=mask)


def softmax(x):
    n_rows, n_cols = x.shape
    out = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    block_size = triton.next_power_of_2(n_cols)
    softmax_kernel[(n_rows,)](out, x, x.stride(0), out.stride(0), n_cols, BLOCK_SIZE=block_size)
    return out
