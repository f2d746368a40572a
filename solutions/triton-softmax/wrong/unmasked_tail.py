# expect: failed
# why: loads and stores the whole block with no mask, as if every row were exactly BLOCK_SIZE long:
#   when the row length is not a power of two, the last lanes run past the end of the row, and the
#   last row's past the end of the tensor (out of bounds: garbage or a fault on a GPU)
# caught-by: test_ragged_rows, test_random_shapes
import torch
import triton
import triton.language as tl


@triton.jit
def softmax_kernel(out_ptr, x_ptr, x_row_stride, out_row_stride, n_cols, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + row * x_row_stride + cols).to(tl.float32)  # the mistake: no mask
    z = x - tl.max(x, axis=0)
    numerator = tl.exp(z)
    tl.store(out_ptr + row * out_row_stride + cols, numerator / tl.sum(numerator, axis=0))


def softmax(x):
    n_rows, n_cols = x.shape
    out = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    block_size = triton.next_power_of_2(n_cols)
    softmax_kernel[(n_rows,)](out, x, x.stride(0), out.stride(0), n_cols, BLOCK_SIZE=block_size)
    return out
