"""A fused, numerically stable row softmax in Triton: one program per row, the whole row in one block.

The structure of the Triton tutorial "Fused Softmax": each program loads its row once (the columns
past the end masked off and read as -inf), subtracts the row's maximum, exponentiates, sums and
divides in float32, and stores the row once, in the output's dtype.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def softmax_kernel(
    out_ptr,
    x_ptr,
    x_row_stride,
    out_row_stride,
    n_cols,
    BLOCK_SIZE: tl.constexpr,
):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    # the lanes past the end of the row read -inf: they cannot win the max, and exp(-inf) = 0
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=mask, other=-float("inf")).to(tl.float32)
    z = x - tl.max(x, axis=0)
    numerator = tl.exp(z)
    denominator = tl.sum(numerator, axis=0)
    tl.store(out_ptr + row * out_row_stride + cols, numerator / denominator, mask=mask)


def softmax(x: torch.Tensor) -> torch.Tensor:
    n_rows, n_cols = x.shape
    out = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    block_size = triton.next_power_of_2(n_cols)
    num_warps = 8 if block_size >= 2048 else 4
    softmax_kernel[(n_rows,)](
        out, x, x.stride(0), out.stride(0), n_cols, BLOCK_SIZE=block_size, num_warps=num_warps
    )
    return out
